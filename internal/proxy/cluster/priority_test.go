package cluster

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster/lb"
)

func hostsFor(counts ...int) []HostStatus {
	var all []HostStatus
	for p, n := range counts {
		for i := range n {
			all = append(all, HostStatus{Host: lb.NewHost(fmt.Sprintf("10.0.%d.%d:80", p, i), ""), Weight: 1, Priority: uint32(p)})
		}
	}
	return all
}

func loads(c *Cluster) []uint32 {
	var out []uint32
	for _, l := range c.state.Load().levels {
		out = append(out, l.load)
	}
	return out
}

func TestPriorityLoad(t *testing.T) {
	tests := []struct {
		name      string
		counts    []int
		unhealthy map[int]int // priority → number of unhealthy hosts
		want      []uint32
	}{
		{name: "all healthy: everything to priority 0", counts: []int{4, 2}, want: []uint32{100, 0}},
		{name: "half of p0 healthy spills 30% over", counts: []int{4, 2}, unhealthy: map[int]int{0: 2}, want: []uint32{70, 30}},
		{name: "overprovisioning hides small losses", counts: []int{4, 2}, unhealthy: map[int]int{0: 1}, want: []uint32{100, 0}},
		{name: "nothing healthy: priority 0 takes all", counts: []int{2, 2}, unhealthy: map[int]int{0: 2, 1: 2}, want: []uint32{100, 0}},
		{name: "degraded everywhere: proportional", counts: []int{4, 4}, unhealthy: map[int]int{0: 3, 1: 3}, want: []uint32{50, 50}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &Cluster{policy: lb.RoundRobin(), overprovisioning: DefaultOverprovisioning, panicThreshold: DefaultPanicThreshold}
			all := hostsFor(tc.counts...)
			for p, n := range tc.unhealthy {
				for _, h := range all {
					if int(h.Priority) == p && n > 0 {
						h.Host.SetFailedActiveHealthCheck(true)
						n--
					}
				}
			}
			c.setMembers(all)
			if diff := cmp.Diff(tc.want, loads(c)); diff != "" {
				t.Errorf("loads (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnhealthyHostsGetNoTraffic(t *testing.T) {
	c := &Cluster{policy: lb.RoundRobin(), overprovisioning: DefaultOverprovisioning, panicThreshold: DefaultPanicThreshold}
	all := hostsFor(4)
	c.setMembers(all)
	all[1].Host.SetEjected(true)
	c.HealthChanged()
	for range 100 {
		if h := c.Pick(&lb.Request{}); h == all[1].Host {
			t.Fatal("an ejected host was picked")
		}
	}
	// Below the panic threshold every host takes traffic again.
	all[0].Host.SetFailedActiveHealthCheck(true)
	all[2].Host.SetFailedActiveHealthCheck(true)
	c.HealthChanged()
	seen := map[*lb.Host]bool{}
	for range 100 {
		seen[c.Pick(&lb.Request{})] = true
	}
	if len(seen) != 4 {
		t.Fatalf("panic mode used %d of 4 hosts", len(seen))
	}
}
