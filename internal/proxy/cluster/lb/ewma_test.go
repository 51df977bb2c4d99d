package lb_test

import (
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster/lb"
	"github.com/trellis-mesh/trellis/internal/proxy/cluster/lb/lbtest"
)

func TestPeakEWMAConformance(t *testing.T) {
	lbtest.Run(t, lb.PeakEWMA, lbtest.Options{})
}

// TestPeakEWMAAvoidsSlowAndOverloadedHosts: a host with a high latency
// average, or one answering "overloaded", gets little traffic.
func TestPeakEWMAAvoidsSlowAndOverloadedHosts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		observe func(h *lb.Host)
	}{
		{name: "slow", observe: func(h *lb.Host) { h.Observe(200*time.Millisecond, false) }},
		{name: "overloaded", observe: func(h *lb.Host) { h.Observe(time.Millisecond, true) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			members := lbtest.Members(1, 1, 1, 1)
			for i, m := range members {
				if i == 0 {
					tc.observe(m.Host)
				} else {
					m.Host.Observe(5*time.Millisecond, false)
				}
			}
			p := lb.PeakEWMA().Build(members)
			bad := 0
			for range 10000 {
				if p.Pick(&lb.Request{}) == members[0].Host {
					bad++
				}
			}
			// Power of two choices picks the bad host only when both draws
			// land on it, which they never do (the two draws differ).
			if bad != 0 {
				t.Fatalf("the %s host got %d of 10000 picks", tc.name, bad)
			}
		})
	}
}

func TestPeakEWMADecaysAfterAPeak(t *testing.T) {
	h := lb.NewHost("10.0.0.1:80", "")
	h.Observe(500*time.Millisecond, false)
	fast := lb.NewHost("10.0.0.2:80", "")
	fast.Observe(100*time.Millisecond, false)
	p := lb.PeakEWMA().Build([]lb.Member{{Host: h, Weight: 1}, {Host: fast, Weight: 1}})
	if p.Pick(&lb.Request{}) != fast {
		t.Fatal("the host with the recent peak was preferred")
	}
}

func BenchmarkPeakEWMAPick(b *testing.B) {
	members := lbtest.Members(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
	for _, m := range members {
		m.Host.Observe(time.Millisecond, false)
	}
	p := lb.PeakEWMA().Build(members)
	req := &lb.Request{}
	b.ReportAllocs()
	for b.Loop() {
		p.Pick(req)
	}
}
