package outlier

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/trellis-mesh/trellis/internal/proxy/cluster/lb"
)

// ejectFor ejects host i with consecutive 5xx (Consecutive5xx must be 5)
// and sleeps one second at a time (the tests' interval) until the host is
// back; it returns how long the host was out.
func (e *env) ejectFor(t *testing.T, i int) time.Duration {
	t.Helper()
	start := time.Now()
	e.report(i, HTTPStatus, 500, 5)
	if !e.hosts[i].Ejected() {
		t.Fatalf("host %d not ejected", i)
	}
	for e.hosts[i].Ejected() {
		time.Sleep(time.Second)
		synctest.Wait()
		if time.Since(start) > time.Hour {
			t.Fatalf("host %d never returned", i)
		}
	}
	return time.Since(start)
}

// TestEjectionTime checks that the ejection time is base × multiplier,
// capped by max_ejection_time, that the multiplier stops growing at the
// cap and drops by one per healthy interval, and that hosts return at the
// first sweep after their ejection time.
func TestEjectionTime(t *testing.T) {
	cfg := testConfig()
	cfg.MaxEjectionTime = 25 * time.Second
	inBubble(t, cfg, 4, func(t *testing.T, e *env) {
		var got []time.Duration
		for range 5 {
			got = append(got, e.ejectFor(t, 0))
		}
		time.Sleep(3 * time.Second) // multiplier 4 → 1
		synctest.Wait()
		got = append(got, e.ejectFor(t, 0)) // multiplier 2
		time.Sleep(10 * time.Second)        // → 0
		synctest.Wait()
		got = append(got, e.ejectFor(t, 0))
		want := []time.Duration{10e9, 20e9, 25e9, 25e9, 25e9, 20e9, 10e9}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ejection times (-want +got):\n%s", diff)
		}
		// One OnChange per ejection and per return.
		if n := e.changes.Load(); n != 14 {
			t.Errorf("OnChange called %d times, want 14", n)
		}
		if _, _, _, active := e.m.snapshot(); active != 0 {
			t.Errorf("active = %d, want 0", active)
		}
	})
}

// TestReturnNotBeforeSweep checks that a host ejected between sweeps comes
// back at the first sweep after its ejection time.
func TestReturnNotBeforeSweep(t *testing.T) {
	cfg := testConfig()
	cfg.Interval = 4 * time.Second
	inBubble(t, cfg, 4, func(t *testing.T, e *env) {
		time.Sleep(time.Second) // eject at 1s; due at 11s; sweeps at 4, 8, 12
		e.report(0, HTTPStatus, 500, 5)
		time.Sleep(10*time.Second + 999*time.Millisecond)
		synctest.Wait()
		if !e.hosts[0].Ejected() {
			t.Fatal("returned before the sweep at 12s")
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if e.hosts[0].Ejected() {
			t.Fatal("not returned at the sweep at 12s")
		}
	})
}

// TestJitter checks that max_ejection_time_jitter adds up to its value.
func TestJitter(t *testing.T) {
	cfg := testConfig()
	cfg.MaxEjectionTimeJitter = 5 * time.Second
	inBubble(t, cfg, 4, func(t *testing.T, e *env) {
		seen := map[time.Duration]bool{}
		for range 30 {
			d := e.ejectFor(t, 0)
			if d < 10*time.Second || d > 15*time.Second {
				t.Fatalf("ejected for %v, want within [10s, 15s]", d)
			}
			seen[d] = true
			time.Sleep(time.Minute) // multiplier back to 0
		}
		if len(seen) < 2 {
			t.Errorf("every ejection lasted the same %v: no jitter", seen)
		}
	})
}

// TestIntervalUpdate checks that Run picks up a new interval at once.
func TestIntervalUpdate(t *testing.T) {
	cfg := testConfig()
	cfg.Interval = time.Hour
	cfg.BaseEjectionTime = time.Second
	inBubble(t, cfg, 4, func(t *testing.T, e *env) {
		e.report(0, HTTPStatus, 500, 5)
		cfg.Interval = time.Second
		e.d.Update(cfg)
		time.Sleep(time.Second)
		synctest.Wait()
		if e.hosts[0].Ejected() {
			t.Error("host not returned one new interval later")
		}
	})
}

type load struct{ total, success int }

func uniform(n int, l load) []load {
	out := make([]load, n)
	for i := range out {
		out[i] = l
	}
	return out
}

func with(ls []load, i int, l load) []load {
	ls = append([]load(nil), ls...)
	ls[i] = l
	return ls
}

// TestRates checks success-rate and failure-percentage ejection with their
// minimum hosts and request volumes, for both origins.
func TestRates(t *testing.T) {
	full := load{100, 100}
	tests := []struct {
		name     string
		cfg      func(c *Config)
		ext      []load // HTTP 200 / 500
		local    []load // ConnectSuccess / ConnectFailure (split only)
		extra    func(e *env)
		want     []int
		wantType EjectionType
		detected map[EjectionType]int
	}{
		{
			name: "success rate outlier",
			ext:  with(uniform(5, full), 0, load{100, 50}), // mean 90, stdev 20, threshold 52
			want: []int{0}, wantType: SuccessRate,
		},
		{
			name: "success rate just above threshold",
			ext:  with(uniform(5, full), 0, load{100, 53}), // mean 90.6, stdev 18.8, threshold 54.9
			want: []int{0}, wantType: SuccessRate,
		},
		{
			name: "success rate within spread",
			ext:  []load{{100, 80}, {100, 90}, full, full, full}, // mean 94, stdev 8, threshold 78.8
		},
		{
			name: "stdev factor 1.0",
			cfg:  func(c *Config) { c.SuccessRateStdevFactor = 1000 }, // threshold 86
			ext:  []load{{100, 80}, {100, 90}, full, full, full},
			want: []int{0}, wantType: SuccessRate,
		},
		{
			name: "below success_rate_request_volume",
			ext:  with(uniform(5, full), 0, load{99, 0}),
		},
		{
			name: "request volume lowered",
			cfg:  func(c *Config) { c.SuccessRateRequestVolume = 20 },
			ext:  with(uniform(5, load{20, 20}), 0, load{20, 0}),
			want: []int{0}, wantType: SuccessRate,
		},
		{
			name: "fewer than success_rate_minimum_hosts",
			ext:  with(uniform(4, full), 0, load{100, 0}),
		},
		{
			name: "success_rate_minimum_hosts counts hosts with volume",
			cfg:  func(c *Config) { c.SuccessRateMinimumHosts = 3; c.SuccessRateStdevFactor = 1000 },
			ext:  []load{{100, 0}, full, full, {10, 10}, {10, 10}},
			want: []int{0}, wantType: SuccessRate,
		},
		{
			name:     "enforcing_success_rate 0",
			cfg:      func(c *Config) { c.EnforcingSuccessRate = 0 },
			ext:      with(uniform(5, full), 0, load{100, 50}),
			detected: map[EjectionType]int{SuccessRate: 1},
		},
		{
			name: "two outliers capped by max_ejection_percent",
			cfg:  func(c *Config) { c.MaxEjectionPercent = 10 },
			ext:  with(with(uniform(10, full), 0, load{100, 0}), 1, load{100, 0}),
			want: []int{0}, wantType: SuccessRate,
		},
		{
			name: "failure percentage",
			cfg:  func(c *Config) { c.EnforcingFailurePercentage = 100; c.SuccessRateMinimumHosts = 100 },
			ext:  with(uniform(5, load{50, 50}), 0, load{100, 15}),
			want: []int{0}, wantType: FailurePercentage,
		},
		{
			name: "failure percentage below threshold",
			cfg:  func(c *Config) { c.EnforcingFailurePercentage = 100; c.SuccessRateMinimumHosts = 100 },
			ext:  with(uniform(5, load{50, 50}), 0, load{100, 16}),
		},
		{
			name: "failure percentage threshold lowered",
			cfg: func(c *Config) {
				c.EnforcingFailurePercentage = 100
				c.SuccessRateMinimumHosts = 100
				c.FailurePercentageThreshold = 10
			},
			ext:  with(uniform(5, load{50, 50}), 2, load{50, 45}),
			want: []int{2}, wantType: FailurePercentage,
		},
		{
			name: "below failure_percentage_request_volume",
			cfg:  func(c *Config) { c.EnforcingFailurePercentage = 100; c.SuccessRateMinimumHosts = 100 },
			ext:  with(uniform(5, load{50, 50}), 0, load{49, 0}),
		},
		{
			name: "fewer than failure_percentage_minimum_hosts with volume",
			cfg:  func(c *Config) { c.EnforcingFailurePercentage = 100; c.SuccessRateMinimumHosts = 100 },
			ext:  with(uniform(5, load{10, 10}), 0, load{50, 0}),
		},
		{
			name: "failure_percentage_minimum_hosts 1",
			cfg: func(c *Config) {
				c.EnforcingFailurePercentage = 100
				c.SuccessRateMinimumHosts = 100
				c.FailurePercentageMinimumHosts = 1
			},
			ext:  with(uniform(5, load{10, 10}), 0, load{50, 0}),
			want: []int{0}, wantType: FailurePercentage,
		},
		{
			name:     "enforcing_failure_percentage 0 (default)",
			cfg:      func(c *Config) { c.SuccessRateMinimumHosts = 100 },
			ext:      with(uniform(5, load{50, 50}), 0, load{50, 0}),
			detected: map[EjectionType]int{FailurePercentage: 1},
		},
		{
			name: "local-origin failures in the external success rate when not split",
			extra: func(e *env) {
				e.report(0, HTTPStatus, 200, 50)
				e.report(0, ConnectFailure, 0, 50)
				e.report(0, ConnectSuccess, 0, 500) // ignored
			},
			ext:  with(uniform(5, full), 0, load{}),
			want: []int{0}, wantType: SuccessRate,
		},
		{
			name:  "local-origin success rate",
			cfg:   func(c *Config) { c.SplitExternalLocalOriginErrors = true },
			ext:   uniform(5, full),
			local: with(uniform(5, full), 3, load{100, 50}),
			want:  []int{3}, wantType: SuccessRateLocalOrigin,
		},
		{
			name:     "enforcing_local_origin_success_rate 0",
			cfg:      func(c *Config) { c.SplitExternalLocalOriginErrors = true; c.EnforcingLocalOriginSuccessRate = 0 },
			ext:      uniform(5, full),
			local:    with(uniform(5, full), 3, load{100, 50}),
			detected: map[EjectionType]int{SuccessRateLocalOrigin: 1},
		},
		{
			name: "local-origin failure percentage",
			cfg: func(c *Config) {
				c.SplitExternalLocalOriginErrors = true
				c.SuccessRateMinimumHosts = 100
				c.EnforcingFailurePercentageLocalOrigin = 100
			},
			local: with(uniform(5, load{50, 50}), 1, load{50, 5}),
			want:  []int{1}, wantType: FailurePercentageLocalOrigin,
		},
		{
			name: "local-origin failures stay out of the external rates when split",
			cfg: func(c *Config) {
				c.SplitExternalLocalOriginErrors = true
				c.EnforcingLocalOriginSuccessRate = 0
			},
			ext:      uniform(5, full),
			local:    with(uniform(5, full), 0, load{100, 0}),
			detected: map[EjectionType]int{SuccessRateLocalOrigin: 1, FailurePercentageLocalOrigin: 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Consecutive5xx, cfg.ConsecutiveGatewayFailure, cfg.ConsecutiveLocalOriginFailure = 0, 0, 0
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			n := max(len(tc.ext), len(tc.local))
			inBubble(t, cfg, n, func(t *testing.T, e *env) {
				for i, l := range tc.ext {
					e.report(i, HTTPStatus, 200, l.success)
					e.report(i, HTTPStatus, 500, l.total-l.success)
				}
				for i, l := range tc.local {
					e.report(i, ConnectSuccess, 0, l.success)
					e.report(i, ConnectFailure, 0, l.total-l.success)
				}
				if tc.extra != nil {
					tc.extra(e)
				}
				if e.ejected() != nil {
					t.Fatalf("ejected %v before the sweep", e.ejected())
				}
				time.Sleep(time.Second)
				synctest.Wait()
				if diff := cmp.Diff(tc.want, e.ejected()); diff != "" {
					t.Errorf("ejected hosts (-want +got):\n%s", diff)
				}
				detected, ejected, _, _ := e.m.snapshot()
				wantEjected := map[EjectionType]int{}
				if len(tc.want) > 0 {
					wantEjected[tc.wantType] = len(tc.want)
				}
				if diff := cmp.Diff(wantEjected, ejected); diff != "" {
					t.Errorf("ejections (-want +got):\n%s", diff)
				}
				if tc.detected != nil {
					if diff := cmp.Diff(tc.detected, detected); diff != "" {
						t.Errorf("detections (-want +got):\n%s", diff)
					}
				}
			})
		})
	}
}

// TestRatesPerInterval checks that volumes do not add up across intervals.
func TestRatesPerInterval(t *testing.T) {
	cfg := testConfig()
	cfg.Consecutive5xx = 0
	inBubble(t, cfg, 5, func(t *testing.T, e *env) {
		for range 2 {
			for i := range 5 {
				e.report(i, HTTPStatus, 200, 50)
			}
			e.report(0, HTTPStatus, 500, 50)
			time.Sleep(time.Second)
			synctest.Wait()
		}
		if e.ejected() != nil {
			t.Fatalf("ejected %v with 100 requests over two intervals", e.ejected())
		}
		for i := range 5 {
			e.report(i, HTTPStatus, 200, 100)
		}
		e.report(0, HTTPStatus, 500, 100)
		time.Sleep(time.Second)
		synctest.Wait()
		if diff := cmp.Diff([]int{0}, e.ejected()); diff != "" {
			t.Errorf("ejected (-want +got):\n%s", diff)
		}
	})
}

// TestSuccessRateThreshold checks the mean - factor × stdev math.
func TestSuccessRateThreshold(t *testing.T) {
	tests := []struct {
		name   string
		rates  []float64
		factor float64
		want   float64
	}{
		{name: "envoy example", rates: []float64{50, 100, 100, 100, 100}, factor: 1.9, want: 52},
		{name: "uniform", rates: []float64{70, 70, 70}, factor: 1.9, want: 70},
		{name: "factor 1", rates: []float64{80, 90, 100, 100, 100}, factor: 1, want: 86},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rs []rate
			sum := 0.0
			for _, r := range tc.rates {
				rs = append(rs, rate{total: 100, success: uint64(r)})
				sum += r
			}
			got := successRateThreshold(sum, rs, tc.factor)
			if d := got - tc.want; d > 1e-9 || d < -1e-9 {
				t.Errorf("threshold = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestUpdateKeepsState checks that Update keeps counters, ejections and the
// multiplier, and applies the new ejection times to a host already out.
func TestUpdateKeepsState(t *testing.T) {
	cfg := testConfig()
	inBubble(t, cfg, 4, func(t *testing.T, e *env) {
		if got := e.ejectFor(t, 0); got != 10*time.Second {
			t.Fatalf("first ejection %v, want 10s", got)
		}
		e.report(1, HTTPStatus, 500, 4)
		e.report(0, HTTPStatus, 500, 5) // multiplier 2: due at 20s
		start := time.Now()
		cfg.MaxEjectionTime = 15 * time.Second
		cfg.SuccessRateStdevFactor = 1000
		e.d.Update(cfg)
		if !e.hosts[0].Ejected() {
			t.Fatal("Update returned an ejected host")
		}
		e.report(1, HTTPStatus, 500, 1)
		if !e.hosts[1].Ejected() {
			t.Error("consecutive count lost by Update")
		}
		for e.hosts[0].Ejected() {
			time.Sleep(time.Second)
			synctest.Wait()
		}
		if got := time.Since(start); got != 15*time.Second {
			t.Errorf("second ejection %v, want 15s (new max)", got)
		}
	})
}

// TestSetHostsKeepsState checks that SetHosts keeps the state of remaining
// hosts, forgets removed ones and clears their ejection.
func TestSetHostsKeepsState(t *testing.T) {
	inBubble(t, testConfig(), 4, func(t *testing.T, e *env) {
		h := e.hosts
		if got := e.ejectFor(t, 0); got != 10*time.Second {
			t.Fatalf("first ejection %v, want 10s", got)
		}
		e.report(0, HTTPStatus, 500, 5) // multiplier 2
		e.report(1, HTTPStatus, 500, 4)
		e.report(2, HTTPStatus, 500, 5)
		extra := lb.NewHost("10.0.0.9:80", "")
		e.d.SetHosts([]*lb.Host{h[0], h[1], h[3], extra}) // h[2] removed while ejected
		if !h[0].Ejected() {
			t.Error("SetHosts returned a remaining host")
		}
		if h[2].Ejected() {
			t.Error("removed host still flagged ejected")
		}
		if _, _, _, active := e.m.snapshot(); active != 1 {
			t.Errorf("active = %d, want 1", active)
		}
		e.report(1, HTTPStatus, 500, 1)
		if !h[1].Ejected() {
			t.Error("consecutive count lost by SetHosts")
		}
		e.report(2, HTTPStatus, 500, 10)
		if h[2].Ejected() {
			t.Error("removed host ejected")
		}
		start := time.Now()
		for h[0].Ejected() {
			time.Sleep(time.Second)
			synctest.Wait()
		}
		if got := time.Since(start); got != 20*time.Second {
			t.Errorf("second ejection %v, want 20s (multiplier kept)", got)
		}
		// A host added back starts afresh.
		e.d.SetHosts(h)
		if got := e.ejectFor(t, 2); got != 10*time.Second {
			t.Errorf("re-added host ejected for %v, want 10s", got)
		}
		// SetHosts(nil) returns everyone.
		e.report(3, HTTPStatus, 500, 5)
		e.d.SetHosts(nil)
		if e.ejected() != nil {
			t.Errorf("SetHosts(nil) left %v ejected", e.ejected())
		}
	})
}
