package outlier

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster/lb"
)

// fakeMetrics records what the detector reports.
type fakeMetrics struct {
	mu       sync.Mutex
	detected map[EjectionType]int
	ejected  map[EjectionType]int
	overflow int
	active   int
}

func newFakeMetrics() *fakeMetrics {
	return &fakeMetrics{detected: map[EjectionType]int{}, ejected: map[EjectionType]int{}}
}

func (m *fakeMetrics) Detected(t EjectionType) { m.mu.Lock(); m.detected[t]++; m.mu.Unlock() }
func (m *fakeMetrics) Ejected(t EjectionType)  { m.mu.Lock(); m.ejected[t]++; m.mu.Unlock() }
func (m *fakeMetrics) Overflow()               { m.mu.Lock(); m.overflow++; m.mu.Unlock() }
func (m *fakeMetrics) Active(n int)            { m.mu.Lock(); m.active = n; m.mu.Unlock() }

func (m *fakeMetrics) snapshot() (detected, ejected map[EjectionType]int, overflow, active int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	detected, ejected = map[EjectionType]int{}, map[EjectionType]int{}
	for k, v := range m.detected {
		detected[k] = v
	}
	for k, v := range m.ejected {
		ejected[k] = v
	}
	return detected, ejected, m.overflow, m.active
}

// env is a detector over n hosts.
type env struct {
	d       *Detector
	hosts   []*lb.Host
	m       *fakeMetrics
	changes atomic.Int32
}

func newEnv(cfg Config, n int) *env {
	e := &env{m: newFakeMetrics()}
	e.d = New(cfg, Options{Cluster: "c", Metrics: e.m, OnChange: func() { e.changes.Add(1) }})
	for i := range n {
		e.hosts = append(e.hosts, lb.NewHost(fmt.Sprintf("10.0.0.%d:80", i+1), ""))
	}
	e.d.SetHosts(e.hosts)
	return e
}

// report reports outcome o (with status) n times for host i.
func (e *env) report(i int, o Outcome, status, n int) {
	for range n {
		e.d.Report(e.hosts[i], o, status)
	}
}

// ejected lists the indexes of ejected hosts.
func (e *env) ejected() []int {
	var out []int
	for i, h := range e.hosts {
		if h.Ejected() {
			out = append(out, i)
		}
	}
	return out
}

// testConfig is the default config with a 1s interval, 10s base ejection
// time and no ejection cap.
func testConfig() Config {
	c := DefaultConfig()
	c.Interval = 1e9
	c.BaseEjectionTime = 10e9
	c.MaxEjectionPercent = 100
	return c
}

// inBubble runs f in a synctest bubble with Run going.
func inBubble(t *testing.T, cfg Config, n int, f func(t *testing.T, e *env)) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(cfg, n)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { e.d.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		f(t, e)
	})
}

func slogText(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

func hostsOf(h ...*lb.Host) []*lb.Host { return h }
