package lb_test

import (
	"testing"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster/lb"
	"github.com/trellis-mesh/trellis/internal/proxy/cluster/lb/lbtest"
)

// BenchmarkPick measures Pick over 16 hosts, with equal weights and with
// weights 1..16. Pick must report 0 allocs/op.
func BenchmarkPick(b *testing.B) {
	policies := []struct {
		name   string
		policy lb.Policy
	}{
		{"RoundRobin", lb.RoundRobin()},
		{"LeastRequest", lb.LeastRequest(0, lb.DefaultActiveRequestBias)},
		{"Random", lb.Random()},
		{"RingHash", lb.RingHash(0, 0)},
		{"Maglev", lb.Maglev(0)},
	}
	equal := make([]uint32, 16)
	weighted := make([]uint32, 16)
	for i := range equal {
		equal[i], weighted[i] = 1, uint32(i+1)
	}
	for _, pc := range policies {
		for _, set := range []struct {
			name    string
			weights []uint32
		}{{"equal", equal}, {"weighted", weighted}} {
			b.Run(pc.name+"/"+set.name, func(b *testing.B) {
				p := pc.policy.Build(lbtest.Members(set.weights...))
				req := &lb.Request{Hash: lb.HashString("user-42"), HasHash: true}
				b.ReportAllocs()
				for b.Loop() {
					p.Pick(req)
				}
			})
		}
	}
}
