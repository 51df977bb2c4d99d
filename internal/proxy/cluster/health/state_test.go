package health

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRecord(t *testing.T) {
	type step struct {
		r      result
		failed bool
		tr     transition
	}
	tests := []struct {
		name     string
		failed   bool // verdict before the first check
		checked  bool
		healthy  uint32
		unhealty uint32
		steps    []step
	}{
		{
			name: "new host healthy after one success", failed: true, healthy: 3, unhealty: 2,
			steps: []step{{success, false, changed}, {success, false, unchanged}},
		},
		{
			name: "new host failing stays failed", failed: true, healthy: 2, unhealty: 2,
			steps: []step{{failNetwork, true, unchanged}, {success, true, pending}, {success, false, changed}},
		},
		{
			name: "unhealthy threshold counts network, timeout and retriable", healthy: 1, unhealty: 3, checked: true,
			steps: []step{{failNetwork, false, pending}, {failTimeout, false, pending}, {failRetriable, true, changed}, {failTimeout, true, unchanged}},
		},
		{
			name: "success resets the failure count", healthy: 1, unhealty: 2, checked: true,
			steps: []step{{failTimeout, false, pending}, {success, false, unchanged}, {failTimeout, false, pending}, {failTimeout, true, changed}},
		},
		{
			name: "active failure is immediate", healthy: 1, unhealty: 5, checked: true,
			steps: []step{{failActive, true, changed}},
		},
		{
			name: "healthy threshold after failure", failed: true, checked: true, healthy: 3, unhealty: 1,
			steps: []step{{success, true, pending}, {success, true, pending}, {failNetwork, true, unchanged}, {success, true, pending}, {success, true, pending}, {success, false, changed}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := hostState{failed: tc.failed, checked: tc.checked}
			var got, want []step
			for _, st := range tc.steps {
				tr := s.record(st.r, tc.healthy, tc.unhealty)
				got = append(got, step{st.r, s.failed, tr})
				want = append(want, st)
			}
			if d := cmp.Diff(want, got, cmp.AllowUnexported(step{})); d != "" {
				t.Errorf("steps (-want +got):\n%s", d)
			}
		})
	}
}

func TestNextInterval(t *testing.T) {
	cfg := Config{
		Interval: 10 * time.Second, UnhealthyInterval: 20 * time.Second,
		UnhealthyEdgeInterval: 3 * time.Second, HealthyEdgeInterval: 4 * time.Second,
		NoTrafficInterval: 60 * time.Second, NoTrafficHealthyInterval: 90 * time.Second,
	}
	zero := func(int64) int64 { return 0 }
	tests := []struct {
		name    string
		r       result
		tr      transition
		traffic bool
		want    time.Duration
	}{
		{"healthy", success, unchanged, true, 10 * time.Second},
		{"became healthy", success, changed, true, 10 * time.Second},
		{"recovering", success, pending, true, 4 * time.Second},
		{"failing edge", failTimeout, pending, true, 3 * time.Second},
		{"became unhealthy", failActive, changed, true, 20 * time.Second},
		{"unhealthy", failNetwork, unchanged, true, 20 * time.Second},
		{"no traffic healthy", success, unchanged, false, 90 * time.Second},
		{"no traffic recovering", success, pending, false, 60 * time.Second},
		{"no traffic failing", failNetwork, unchanged, false, 60 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := cfg.next(tc.r, tc.tr, tc.traffic, zero); got != tc.want {
				t.Errorf("next = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestJitterBounds(t *testing.T) {
	tests := []struct {
		name     string
		base, j  time.Duration
		percent  uint32
		min, max time.Duration // inclusive min, exclusive max
	}{
		{"none", time.Second, 0, 0, time.Second, time.Second + 1},
		{"interval_jitter", time.Second, 500 * time.Millisecond, 0, time.Second, 1500 * time.Millisecond},
		{"interval_jitter_percent", time.Second, 0, 20, time.Second, 1200 * time.Millisecond},
		{"both", time.Second, 100 * time.Millisecond, 50, time.Second, 1600*time.Millisecond - 1},
		{"floor 1ms", 0, 0, 0, time.Millisecond, time.Millisecond + 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The extremes of the random source give the bounds exactly.
			lo := jitter(tc.base, tc.j, tc.percent, func(int64) int64 { return 0 })
			hi := jitter(tc.base, tc.j, tc.percent, func(n int64) int64 { return n - 1 })
			if lo != tc.min || hi >= tc.max {
				t.Errorf("range [%v, %v], want [%v, %v)", lo, hi, tc.min, tc.max)
			}
			for range 1000 {
				if d := jitter(tc.base, tc.j, tc.percent, rand.Int64N); d < tc.min || d >= tc.max {
					t.Fatalf("jitter %v outside [%v, %v)", d, tc.min, tc.max)
				}
			}
		})
	}
	cfg := Config{InitialJitter: time.Second}
	for range 1000 {
		if d := cfg.first(rand.Int64N); d < 0 || d >= time.Second {
			t.Fatalf("initial jitter %v outside [0, 1s)", d)
		}
	}
	if d := (&Config{}).first(rand.Int64N); d != 0 {
		t.Errorf("no initial_jitter: first = %v, want 0", d)
	}
}

func BenchmarkRecordNext(b *testing.B) {
	cfg := Config{Interval: time.Second, UnhealthyInterval: time.Second, UnhealthyEdgeInterval: time.Second,
		HealthyEdgeInterval: time.Second, IntervalJitter: time.Millisecond, IntervalJitterPercent: 10}
	var s hostState
	rs := []result{success, failTimeout, failTimeout, success, success}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := rs[i%len(rs)]
		tr := s.record(r, 2, 2)
		_ = cfg.next(r, tr, true, rand.Int64N)
		i++
	}
}
