package health

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/trellis-mesh/trellis/internal/proxy/cluster/lb"
)

// hang makes a scripted check block until its timeout.
const hang result = 255

// fake scripts check results per host address and records when checks ran,
// in seconds since the bubble started.
type fake struct {
	start  time.Time
	mu     sync.Mutex
	script map[string][]result
	times  map[string][]float64
}

func newFake(script map[string][]result) *fake {
	return &fake{start: time.Now(), script: script, times: map[string][]float64{}}
}

func (f *fake) probe(ctx context.Context, s *session, _ *Config) (result, error) {
	f.mu.Lock()
	addr := s.host.Address
	f.times[addr] = append(f.times[addr], time.Since(f.start).Seconds())
	r := success
	if q := f.script[addr]; len(q) > 0 {
		r, f.script[addr] = q[0], q[1:]
	}
	f.mu.Unlock()
	if r == hang {
		<-ctx.Done()
		return failNetwork, ctx.Err()
	}
	if r != success {
		return r, errors.New("scripted failure")
	}
	return success, nil
}

func (f *fake) got(addr string) []float64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]float64(nil), f.times[addr]...)
}

type counters struct{ attempts, successes, failures, network, healthy atomic.Int64 }

func (m *counters) Attempt()         { m.attempts.Add(1) }
func (m *counters) Success()         { m.successes.Add(1) }
func (m *counters) SetHealthy(n int) { m.healthy.Store(int64(n)) }
func (m *counters) Failure(network bool) {
	m.failures.Add(1)
	if network {
		m.network.Add(1)
	}
}

func testConfig() Config {
	return Config{
		Protocol: HTTP, Timeout: time.Second, Interval: 10 * time.Second,
		UnhealthyThreshold: 2, HealthyThreshold: 2, ReuseConnection: true,
		NoTrafficInterval: 60 * time.Second, NoTrafficHealthyInterval: 60 * time.Second,
		UnhealthyInterval: 20 * time.Second, UnhealthyEdgeInterval: 5 * time.Second,
		HealthyEdgeInterval: 2 * time.Second,
	}
}

// harness runs a Checker with a fake probe inside a synctest bubble.
type harness struct {
	c       *Checker
	f       *fake
	m       *counters
	changes atomic.Int64
	cancel  context.CancelFunc
	done    chan struct{}
}

func start(cfg Config, opts Options, script map[string][]result, hosts ...*lb.Host) *harness {
	h := &harness{f: newFake(script), m: &counters{}, done: make(chan struct{})}
	opts.Metrics = h.m
	opts.OnChange = func() { h.changes.Add(1) }
	h.c = New(cfg, opts)
	h.c.probe = h.f.probe
	h.c.SetHosts(hosts)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.c.Run(ctx); close(h.done) }()
	synctest.Wait()
	return h
}

func (h *harness) stop() { h.cancel(); <-h.done }

// at sleeps until the bubble's clock is sec seconds after the start.
func (h *harness) at(sec float64) {
	time.Sleep(time.Until(h.f.start.Add(time.Duration(sec * float64(time.Second)))))
	synctest.Wait()
}

func TestThresholdsAndIntervals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := lb.NewHost("a:1", "")
		h := start(testConfig(), Options{}, map[string][]result{
			"a:1": {success, failNetwork, failRetriable, success, success},
		}, a)
		defer h.stop()
		// A new host fails until its first check; one success is enough.
		checks := []struct {
			at     float64
			failed bool
		}{{0.5, false}, {14, false}, {15.5, true}, {36, true}, {37.5, false}}
		for _, c := range checks {
			h.at(c.at)
			if got := a.FailedActiveHealthCheck(); got != c.failed {
				t.Errorf("t=%vs: failed = %v, want %v", c.at, got, c.failed)
			}
		}
		h.at(50)
		// 0 first; +10 healthy; +5 unhealthy edge; +20 unhealthy; +2 healthy edge; +10.
		if d := cmp.Diff([]float64{0, 10, 15, 35, 37, 47}, h.f.got("a:1")); d != "" {
			t.Errorf("check times (-want +got):\n%s", d)
		}
		if got := h.changes.Load(); got != 3 {
			t.Errorf("OnChange calls = %d, want 3", got)
		}
		if a, s, f := h.m.attempts.Load(), h.m.successes.Load(), h.m.failures.Load(); a != 6 || s != 4 || f != 2 {
			t.Errorf("attempts/successes/failures = %d/%d/%d, want 6/4/2", a, s, f)
		}
		if got := h.m.healthy.Load(); got != 1 {
			t.Errorf("healthy gauge = %d, want 1", got)
		}
	})
}

func TestTimeoutCountsAsFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := lb.NewHost("a:1", "")
		h := start(testConfig(), Options{}, map[string][]result{"a:1": {success, hang, hang}}, a)
		defer h.stop()
		// 0 success; 10 hangs until 11 (pending, edge 5s); 16 hangs until 17.
		h.at(16.5)
		if a.FailedActiveHealthCheck() {
			t.Fatal("failed after one timeout, threshold is 2")
		}
		h.at(17.5)
		if !a.FailedActiveHealthCheck() {
			t.Fatal("not failed after two timeouts")
		}
		if d := cmp.Diff([]float64{0, 10, 16}, h.f.got("a:1")); d != "" {
			t.Errorf("check times (-want +got):\n%s", d)
		}
		if got := h.m.network.Load(); got != 2 {
			t.Errorf("network failures = %d, want 2", got)
		}
	})
}

func TestNoTrafficInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var traffic atomic.Bool
		a := lb.NewHost("a:1", "")
		h := start(testConfig(), Options{HasTraffic: traffic.Load}, nil, a)
		defer h.stop()
		h.at(100)
		traffic.Store(true) // like Envoy, the pending wait is not cut short
		h.at(135)
		if d := cmp.Diff([]float64{0, 60, 120, 130}, h.f.got("a:1")); d != "" {
			t.Errorf("check times (-want +got):\n%s", d)
		}
	})
}

func TestInitialJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.InitialJitter = 5 * time.Second
		var hosts []*lb.Host
		for _, addr := range []string{"a:1", "b:1", "c:1", "d:1"} {
			hosts = append(hosts, lb.NewHost(addr, ""))
		}
		h := start(cfg, Options{}, nil, hosts...)
		defer h.stop()
		h.at(5)
		for _, host := range hosts {
			got := h.f.got(host.Address)
			if len(got) != 1 || got[0] >= 5 {
				t.Errorf("%s: checks at %v, want one within [0, 5s)", host.Address, got)
			}
		}
	})
}

func TestSetHosts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := lb.NewHost("a:1", ""), lb.NewHost("b:1", "")
		idle := New(testConfig(), Options{})
		idle.SetHosts([]*lb.Host{lb.NewHost("x:1", "")})
		select {
		case <-idle.Initialized():
			t.Fatal("initialized before the first check")
		default:
		}
		h := start(testConfig(), Options{}, map[string][]result{"b:1": {failActive}}, a)
		defer h.stop()
		h.at(1)
		select {
		case <-h.c.Initialized():
		default:
			t.Fatal("not initialized after the first check")
		}
		h.at(5)
		h.c.SetHosts([]*lb.Host{a, b})
		if !b.FailedActiveHealthCheck() {
			t.Error("new host not failed before its first check")
		}
		h.at(7)
		h.c.SetHosts([]*lb.Host{b}) // a stops being checked
		h.at(40)
		if d := cmp.Diff([]float64{0}, h.f.got("a:1")); d != "" {
			t.Errorf("removed host checks (-want +got):\n%s", d)
		}
		// b: the first check fails (b stays failed, unhealthy_interval 20s),
		// then two successes (healthy_edge_interval 2s) make it healthy.
		if d := cmp.Diff([]float64{5, 25, 27, 37}, h.f.got("b:1")); d != "" {
			t.Errorf("new host checks (-want +got):\n%s", d)
		}
		if b.FailedActiveHealthCheck() {
			t.Error("b still failed after healthy_threshold successes")
		}
	})
}

func TestUpdate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := lb.NewHost("a:1", "")
		h := start(testConfig(), Options{}, map[string][]result{"a:1": {failActive}}, a)
		defer h.stop()
		h.at(1)
		// An equal configuration reschedules nothing.
		h.c.Update(testConfig())
		h.at(19)
		faster := testConfig()
		faster.UnhealthyInterval = time.Second
		h.c.Update(faster) // rescheduled from now: 19 + 1
		h.at(20.5)
		if d := cmp.Diff([]float64{0, 20}, h.f.got("a:1")); d != "" {
			t.Errorf("check times (-want +got):\n%s", d)
		}
		h.c.Update(Config{}) // checking off: the host passes
		if a.FailedActiveHealthCheck() {
			t.Error("host still failed with checking off")
		}
		h.at(100)
		if got := len(h.f.got("a:1")); got != 2 {
			t.Errorf("%d checks with checking off, want 2", got)
		}
		h.c.Update(testConfig()) // on again: the host keeps its verdict
		if a.FailedActiveHealthCheck() {
			t.Error("existing host failed when checking turned on")
		}
		h.at(101)
		if got := len(h.f.got("a:1")); got != 3 {
			t.Errorf("%d checks after checking turned on, want 3", got)
		}
	})
}
