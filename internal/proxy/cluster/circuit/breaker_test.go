package circuit

import (
	"math"
	"sync"
	"sync/atomic"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/google/go-cmp/cmp"
)

var resources = []Resource{Connections, PendingRequests, Requests, Retries}

// countingMetrics counts Overflow calls per resource.
type countingMetrics struct{ n [numResources]atomic.Uint64 }

func (m *countingMetrics) Overflow(r Resource) { m.n[r].Add(1) }

// admitAll acquires until refused and returns how many were admitted.
func admitAll(acquire func() bool) int {
	n := 0
	for acquire() {
		n++
	}
	return n
}

func TestZeroBreakerHasDefaults(t *testing.T) {
	var b Breaker
	if diff := cmp.Diff(Defaults(), b.Thresholds()); diff != "" {
		t.Errorf("Thresholds (-want +got):\n%s", diff)
	}
	for i := 0; i < DefaultMaxRetries; i++ {
		if !b.AcquireRetry() {
			t.Fatalf("retry %d refused", i)
		}
	}
	if b.AcquireRetry() {
		t.Errorf("retry %d admitted, want the default limit %d", DefaultMaxRetries+1, DefaultMaxRetries)
	}
	if got := b.Stats(Requests).Limit; got != DefaultMaxRequests {
		t.Errorf("requests limit = %d, want %d", got, DefaultMaxRequests)
	}
}

func TestLimitsAndOverflows(t *testing.T) {
	for _, r := range resources {
		t.Run(r.String(), func(t *testing.T) {
			m := &countingMetrics{}
			b := New(Thresholds{MaxConnections: 2, MaxPendingRequests: 2, MaxRequests: 2, MaxRetries: 2}, m)
			for i := 0; i < 2; i++ {
				if !b.Acquire(r) {
					t.Fatalf("acquire %d refused", i)
				}
			}
			if b.Acquire(r) {
				t.Fatal("acquire 3 admitted over the limit of 2")
			}
			want := Stats{Active: 2, Limit: 2, Overflows: 1}
			if diff := cmp.Diff(want, b.Stats(r)); diff != "" {
				t.Errorf("Stats (-want +got):\n%s", diff)
			}
			if !b.Stats(r).Open() || b.Stats(r).Remaining() != 0 {
				t.Errorf("at the limit: Open = false or Remaining = %d", b.Stats(r).Remaining())
			}
			if got := m.n[r].Load(); got != 1 {
				t.Errorf("Metrics.Overflow(%v) called %d times, want 1", r, got)
			}
			b.Release(r)
			if s := b.Stats(r); s.Open() || s.Remaining() != 1 {
				t.Errorf("after release: Open = %v, Remaining = %d; want false, 1", s.Open(), s.Remaining())
			}
			for _, other := range resources {
				if other != r && b.Stats(other).Active != 0 {
					t.Errorf("%v active = %d, want 0", other, b.Stats(other).Active)
				}
			}
		})
	}
}

func TestNamedMethods(t *testing.T) {
	b := New(Thresholds{MaxConnections: 1, MaxPendingRequests: 1, MaxRequests: 1, MaxRetries: 1}, nil)
	pairs := []struct {
		name    string
		r       Resource
		acquire func() bool
		release func()
	}{
		{"connection", Connections, b.AcquireConnection, b.ReleaseConnection},
		{"pending", PendingRequests, b.AcquirePending, b.ReleasePending},
		{"request", Requests, b.AcquireRequest, b.ReleaseRequest},
		{"retry", Retries, b.AcquireRetry, b.ReleaseRetry},
	}
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			if !p.acquire() || p.acquire() {
				t.Fatal("want the first acquire admitted and the second refused")
			}
			if got := b.Stats(p.r).Active; got != 1 {
				t.Errorf("%v active = %d, want 1", p.r, got)
			}
			p.release()
			if got := b.Stats(p.r).Active; got != 0 {
				t.Errorf("%v active after release = %d, want 0", p.r, got)
			}
		})
	}
}

func TestReleaseNeverUnderflows(t *testing.T) {
	b := New(Thresholds{MaxRequests: 2}, nil)
	b.ReleaseRequest()
	b.ReleaseRequest()
	if got := b.Stats(Requests).Active; got != 0 {
		t.Fatalf("active after unbalanced releases = %d, want 0", got)
	}
	if got := admitAll(b.AcquireRequest); got != 2 {
		t.Errorf("admitted %d after unbalanced releases, want 2", got)
	}
}

func TestZeroLimitRefusesAll(t *testing.T) {
	b := New(Thresholds{}, nil)
	for _, r := range resources {
		if b.Acquire(r) {
			t.Errorf("%v admitted with a limit of 0", r)
		}
	}
}

func TestBudget(t *testing.T) {
	tests := []struct {
		name              string
		budget            Budget
		maxRetries        uint32
		requests, pending int
		want              uint64
	}{
		{name: "floor with no traffic", budget: Budget{20, 3}, want: 3},
		{name: "floor above percent", budget: Budget{20, 3}, requests: 10, want: 3},
		{name: "percent of requests", budget: Budget{20, 3}, requests: 100, want: 20},
		{name: "percent of requests plus pending", budget: Budget{25, 0}, requests: 60, pending: 40, want: 25},
		{name: "rounds down", budget: Budget{20, 0}, requests: 9, want: 1},
		{name: "whole results exact", budget: Budget{20, 0}, requests: 5, want: 1},
		{name: "fractional percent", budget: Budget{12.5, 1}, requests: 40, want: 5},
		{name: "zero budget", budget: Budget{0, 0}, requests: 100, pending: 100, want: 0},
		{name: "zero percent keeps floor", budget: Budget{0, 2}, requests: 100, want: 2},
		{name: "hundred percent", budget: Budget{100, 0}, requests: 7, want: 7},
		{name: "replaces max_retries", budget: Budget{20, 1}, maxRetries: 1000, requests: 10, want: 2},
		{name: "clamped above 100", budget: Budget{500, 0}, requests: 4, want: 4},
		{name: "NaN is 0", budget: Budget{math.NaN(), 1}, requests: 50, want: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bg := tc.budget
			b := New(Thresholds{MaxRequests: 1000, MaxPendingRequests: 1000, MaxRetries: tc.maxRetries, Budget: &bg}, nil)
			for range tc.requests {
				b.AcquireRequest()
			}
			for range tc.pending {
				b.AcquirePending()
			}
			if got := b.Stats(Retries).Limit; got != tc.want {
				t.Errorf("retry limit = %d, want %d", got, tc.want)
			}
			var admitted uint64
			for b.AcquireRetry() {
				admitted++
			}
			if admitted != tc.want {
				t.Errorf("admitted %d retries, want %d", admitted, tc.want)
			}
		})
	}
}

func TestBudgetFollowsTraffic(t *testing.T) {
	b := New(MeshDefaults(), nil)
	for range 50 {
		b.AcquireRequest()
	}
	for range 10 { // 20% of 50
		if !b.AcquireRetry() {
			t.Fatal("retry refused within the budget")
		}
	}
	if b.AcquireRetry() {
		t.Fatal("retry 11 admitted with 50 requests in flight")
	}
	for range 25 {
		b.ReleaseRequest()
	}
	// 25 requests: the budget is now 5 with 10 retries in flight.
	if s := b.Stats(Retries); s.Limit != 5 || !s.Open() || s.Remaining() != 0 {
		t.Errorf("Stats = %+v, want limit 5, open", s)
	}
	for range 6 {
		b.ReleaseRetry()
	}
	if got := admitAll(b.AcquireRetry); got != 1 {
		t.Errorf("with 4 of 5 retries in flight, admitted %d more, want 1", got)
	}
}

func TestUpdateWithRequestsInFlight(t *testing.T) {
	b := New(Thresholds{MaxRequests: 10}, nil)
	for range 8 {
		b.AcquireRequest()
	}
	b.Update(Thresholds{MaxRequests: 5})
	if b.AcquireRequest() {
		t.Fatal("admitted with 8 in flight and a new limit of 5")
	}
	if got := b.Stats(Requests).Active; got != 8 {
		t.Fatalf("active after Update = %d, want 8 (kept)", got)
	}
	for range 4 {
		b.ReleaseRequest()
	}
	if got := admitAll(b.AcquireRequest); got != 1 {
		t.Errorf("with 4 in flight and a limit of 5, admitted %d, want 1", got)
	}
	b.Update(Thresholds{MaxRequests: 7})
	if got := admitAll(b.AcquireRequest); got != 2 {
		t.Errorf("after raising the limit to 7, admitted %d more, want 2", got)
	}
	// Switching to a budget keeps in-flight retries counted.
	b.Update(Thresholds{MaxRetries: 3})
	b.AcquireRetry()
	b.AcquireRetry()
	b.Update(Thresholds{MaxRetries: 3, Budget: &Budget{Percent: 0, MinConcurrency: 2}})
	if b.AcquireRetry() {
		t.Error("retry admitted with 2 in flight and a budget floor of 2")
	}
}

func TestThresholdsIsACopy(t *testing.T) {
	bg := &Budget{Percent: 150, MinConcurrency: 3}
	b := New(Thresholds{Budget: bg}, nil)
	bg.Percent = 1
	got := b.Thresholds()
	if got.Budget.Percent != 100 {
		t.Errorf("Budget.Percent = %v, want 100 (clamped, and not the caller's later write)", got.Budget.Percent)
	}
	got.Budget.MinConcurrency = 99
	if b.Thresholds().Budget.MinConcurrency != 3 {
		t.Error("writing through Thresholds().Budget changed the Breaker")
	}
}

// TestConcurrentLimits hammers each resource from many goroutines and
// checks that the number held never exceeds the limit, every acquisition
// is either admitted or counted as an overflow, and all is released.
func TestConcurrentLimits(t *testing.T) {
	const (
		limit      = 8
		goroutines = 32
		iterations = 2000
	)
	m := &countingMetrics{}
	b := New(Thresholds{MaxConnections: limit, MaxPendingRequests: limit, MaxRequests: limit, MaxRetries: limit}, m)
	var held, peak [numResources]atomic.Int64
	var admitted [numResources]atomic.Uint64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range iterations {
				r := resources[(g+i)%numResources]
				if !b.Acquire(r) {
					continue
				}
				admitted[r].Add(1)
				n := held[r].Add(1)
				for p := peak[r].Load(); n > p && !peak[r].CompareAndSwap(p, n); p = peak[r].Load() {
				}
				held[r].Add(-1)
				b.Release(r)
			}
		})
	}
	wg.Wait()
	for _, r := range resources {
		s := b.Stats(r)
		if p := peak[r].Load(); p > limit {
			t.Errorf("%v: %d held at once, limit %d", r, p, limit)
		}
		if s.Active != 0 {
			t.Errorf("%v: active = %d after all released, want 0", r, s.Active)
		}
		if got, want := admitted[r].Load()+s.Overflows, uint64(goroutines*iterations/numResources); got != want {
			t.Errorf("%v: admitted + overflows = %d, want %d", r, got, want)
		}
		if m.n[r].Load() != s.Overflows {
			t.Errorf("%v: Metrics saw %d overflows, Stats %d", r, m.n[r].Load(), s.Overflows)
		}
	}
}

// TestConcurrentAcquireExact has many goroutines acquire without releasing:
// exactly the limit must be admitted.
func TestConcurrentAcquireExact(t *testing.T) {
	const limit, goroutines = 100, 400
	b := New(Thresholds{MaxRequests: limit}, nil)
	var admitted atomic.Uint64
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			if b.AcquireRequest() {
				admitted.Add(1)
			}
		})
	}
	wg.Wait()
	if got := admitted.Load(); got != limit {
		t.Errorf("admitted %d, want exactly %d", got, limit)
	}
	if got := b.Stats(Requests).Overflows; got != goroutines-limit {
		t.Errorf("overflows = %d, want %d", got, goroutines-limit)
	}
}

// TestConcurrentUpdate races Update against Acquire/Release; under -race it
// checks the swap is safe, and afterwards that counts are balanced.
func TestConcurrentUpdate(t *testing.T) {
	b := New(MeshDefaults(), nil)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := uint32(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			th := Thresholds{MaxRequests: i % 16, MaxRetries: i % 4}
			if i%2 == 0 {
				th.Budget = &Budget{Percent: float64(i % 100), MinConcurrency: i % 3}
			}
			b.Update(th)
		}
	})
	var workers sync.WaitGroup
	for range 8 {
		workers.Go(func() {
			for range 2000 {
				if b.AcquireRequest() {
					if b.AcquireRetry() {
						b.ReleaseRetry()
					}
					b.ReleaseRequest()
				}
			}
		})
	}
	workers.Wait()
	close(stop)
	wg.Wait()
	if a, r := b.Stats(Requests).Active, b.Stats(Retries).Active; a != 0 || r != 0 {
		t.Errorf("active requests, retries = %d, %d; want 0, 0", a, r)
	}
}

func TestBreakers(t *testing.T) {
	m := &countingMetrics{}
	bs := NewBreakers(Priorities{{MaxRequests: 1}, {MaxRequests: 2}}, m)
	tests := []struct {
		name     string
		priority corev3.RoutingPriority
		want     uint64
	}{
		{name: "default", priority: corev3.RoutingPriority_DEFAULT, want: 1},
		{name: "high", priority: corev3.RoutingPriority_HIGH, want: 2},
		{name: "unknown is default", priority: 9, want: 1},
		{name: "negative is default", priority: -1, want: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := bs.For(tc.priority).Stats(Requests).Limit; got != tc.want {
				t.Errorf("limit = %d, want %d", got, tc.want)
			}
		})
	}
	bs.For(high).AcquireRequest()
	bs.Update(Priorities{{MaxRequests: 1}, {MaxRequests: 1}})
	if bs.For(high).AcquireRequest() {
		t.Error("HIGH admitted a request over its updated limit")
	}
	if !bs.For(corev3.RoutingPriority_DEFAULT).AcquireRequest() {
		t.Error("DEFAULT shares HIGH's count; want separate breakers")
	}
	if got := m.n[Requests].Load(); got != 1 {
		t.Errorf("Metrics.Overflow called %d times, want 1", got)
	}
}

func TestResourceString(t *testing.T) {
	var got []string
	for _, r := range append(resources, Resource(9)) {
		got = append(got, r.String())
	}
	want := []string{"cx", "rq_pending", "rq", "rq_retry", "unknown"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("String (-want +got):\n%s", diff)
	}
}
