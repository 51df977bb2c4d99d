package cluster

import (
	"fmt"
	"math"
	"testing"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster/lb"
)

// localityHosts makes n hosts per locality; weights[i] is locality i's
// load_balancing_weight.
func localityHosts(n int, weights ...uint32) []HostStatus {
	var all []HostStatus
	for i, w := range weights {
		for j := range n {
			all = append(all, HostStatus{
				Host:   lb.NewHost(fmt.Sprintf("10.%d.0.%d:80", i, j), ""),
				Weight: 1, Locality: fmt.Sprintf("r/z%d/", i), LocalityWeight: w,
			})
		}
	}
	return all
}

// shares picks n times and returns each locality's share of the picks.
func shares(c *Cluster, n int) map[string]float64 {
	loc := map[*lb.Host]string{}
	for _, h := range c.Hosts() {
		loc[h.Host] = h.Locality
	}
	out := map[string]float64{}
	for range n {
		out[loc[c.Pick(&lb.Request{})]] += 1 / float64(n)
	}
	return out
}

func localityCluster(policy lb.Policy) *Cluster {
	return &Cluster{policy: policy, overprovisioning: DefaultOverprovisioning,
		panicThreshold: DefaultPanicThreshold, localityLB: true}
}

func TestEffectiveLocalityWeight(t *testing.T) {
	tests := []struct {
		name             string
		weight           uint32
		healthy, total   int
		overprovisioning uint32
		want             uint64
	}{
		{name: "all healthy", weight: 3, healthy: 4, total: 4, overprovisioning: 140, want: 3 * availabilityScale},
		{name: "overprovisioning hides a small loss", weight: 3, healthy: 3, total: 4, overprovisioning: 140, want: 3 * availabilityScale},
		{name: "half healthy: 0.7", weight: 2, healthy: 2, total: 4, overprovisioning: 140, want: 2 * 700_000},
		{name: "factor 100: the healthy share", weight: 1, healthy: 1, total: 4, overprovisioning: 100, want: 250_000},
		{name: "none healthy", weight: 5, healthy: 0, total: 4, overprovisioning: 140, want: 0},
		{name: "no weight: no traffic", weight: 0, healthy: 4, total: 4, overprovisioning: 140, want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := &localityGroup{weight: tc.weight, members: make([]lb.Member, tc.total), healthy: make([]lb.Member, tc.healthy)}
			if got := g.effectiveWeight(tc.overprovisioning); got != tc.want {
				t.Errorf("effective weight = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestLocalityWeightedDistribution(t *testing.T) {
	for _, policy := range []struct {
		name string
		p    lb.Policy
	}{{"round robin", lb.RoundRobin()}, {"least request", lb.LeastRequest(2, 1)}, {"random", lb.Random()}} {
		t.Run(policy.name, func(t *testing.T) {
			c := localityCluster(policy.p)
			all := localityHosts(2, 1, 3, 0) // z2 has no weight: no traffic
			c.setMembers(all)
			got := shares(c, 40000)
			want := map[string]float64{"r/z0/": 0.25, "r/z1/": 0.75}
			checkShares(t, got, want)

			// Locality z1 loses half its hosts: availability 1.4 × 1/2 = 0.7,
			// effective weight 2.1 against z0's 1.
			all[2].Host.SetFailedActiveHealthCheck(true)
			c.HealthChanged()
			got = shares(c, 40000)
			checkShares(t, got, map[string]float64{"r/z0/": 1 / 3.1, "r/z1/": 2.1 / 3.1})
			for range 1000 {
				if c.Pick(&lb.Request{}) == all[2].Host {
					t.Fatal("an unhealthy host was picked")
				}
			}
		})
	}
}

func checkShares(t *testing.T, got, want map[string]float64) {
	t.Helper()
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("locality %q got %.3f of the traffic, want none", k, got[k])
		}
	}
	for k, w := range want {
		if math.Abs(got[k]-w) > 0.02 {
			t.Errorf("locality %q got %.3f of the traffic, want %.3f", k, got[k], w)
		}
	}
}

// TestLocalityWeightedPanic: a priority under the panic threshold balances
// over all its hosts, whatever the localities' weights.
func TestLocalityWeightedPanic(t *testing.T) {
	c := localityCluster(lb.RoundRobin())
	all := localityHosts(2, 1, 0)
	c.setMembers(all)
	for _, h := range all[:3] {
		h.Host.SetFailedActiveHealthCheck(true)
	}
	c.HealthChanged()
	seen := map[*lb.Host]bool{}
	for range 100 {
		seen[c.Pick(&lb.Request{})] = true
	}
	if len(seen) != 4 {
		t.Fatalf("panic mode used %d of 4 hosts", len(seen))
	}
}

// TestLocalityWeightedFallback: when no locality has an effective weight
// (all weights unset), the healthy hosts of the priority are used.
func TestLocalityWeightedFallback(t *testing.T) {
	c := localityCluster(lb.RoundRobin())
	c.setMembers(localityHosts(2, 0, 0))
	seen := map[*lb.Host]bool{}
	for range 100 {
		seen[c.Pick(&lb.Request{})] = true
	}
	if len(seen) != 4 {
		t.Fatalf("picked %d of 4 hosts", len(seen))
	}
}

// TestWithoutLocalityWeighting: without locality_weighted_lb_config the
// locality weights are ignored (as Envoy ignores them) and hosts are
// balanced by their own weights.
func TestWithoutLocalityWeighting(t *testing.T) {
	c := localityCluster(lb.RoundRobin())
	c.localityLB = false
	c.setMembers(localityHosts(2, 1, 3))
	checkShares(t, shares(c, 4000), map[string]float64{"r/z0/": 0.5, "r/z1/": 0.5})
}

func BenchmarkLocalityPick(b *testing.B) {
	c := localityCluster(lb.RoundRobin())
	c.setMembers(localityHosts(4, 1, 2, 3))
	req := &lb.Request{}
	b.ReportAllocs()
	for b.Loop() {
		if c.Pick(req) == nil {
			b.Fatal("no host")
		}
	}
}
