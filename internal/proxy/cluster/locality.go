package cluster

import (
	"math/rand/v2"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster/lb"
)

// availabilityScale is the fixed-point unit of a locality's availability
// (1.0 = availabilityScale), fine enough that a weight-1 locality with one
// healthy host in a thousand keeps a share.
const availabilityScale = 1_000_000

// localityGroup is the hosts of one locality within one priority.
type localityGroup struct {
	weight  uint32 // load_balancing_weight of the LocalityLbEndpoints; 0: no traffic
	members []lb.Member
	healthy []lb.Member
}

// groupByLocality splits a priority's hosts by locality, in the order the
// localities first appear.
func groupByLocality(hosts []HostStatus) []*localityGroup {
	var groups []*localityGroup
	index := map[string]*localityGroup{}
	for _, h := range hosts {
		g := index[h.Locality]
		if g == nil {
			g = &localityGroup{weight: h.LocalityWeight}
			index[h.Locality] = g
			groups = append(groups, g)
		}
		m := lb.Member{Host: h.Host, Weight: h.Weight}
		g.members = append(g.members, m)
		if h.Host.Healthy() {
			g.healthy = append(g.healthy, m)
		}
	}
	return groups
}

// effectiveWeight is Envoy's effective locality weight: the locality's
// weight times its availability, min(1, overprovisioning × healthy / total)
// (envoy: HostSetImpl::effectiveLocalityWeight; docs "Locality weighted load
// balancing"). The result is scaled by availabilityScale.
func (g *localityGroup) effectiveWeight(overprovisioning uint32) uint64 {
	if len(g.members) == 0 || g.weight == 0 {
		return 0
	}
	avail := min(availabilityScale,
		uint64(overprovisioning)*uint64(len(g.healthy))*(availabilityScale/100)/uint64(len(g.members)))
	return uint64(g.weight) * avail
}

// localityPicker picks a locality with probability proportional to its
// effective weight, then a host inside it with the cluster's policy.
type localityPicker struct {
	cum     []uint64 // running sums of the effective weights
	pickers []lb.Picker
}

// Pick implements lb.Picker. It does not allocate.
func (p *localityPicker) Pick(req *lb.Request) *lb.Host {
	x := rand.Uint64N(p.cum[len(p.cum)-1])
	lo, hi := 0, len(p.cum)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if p.cum[m] > x {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return p.pickers[lo].Pick(req)
}

// localityWeighted returns the picker of a priority that is not in panic
// under locality-weighted load balancing, or nil when no locality has an
// effective weight (the caller then balances over the priority's healthy
// hosts, as Envoy does when it cannot choose a locality).
func (c *Cluster) localityWeighted(hosts []HostStatus) lb.Picker {
	p := &localityPicker{}
	var sum uint64
	for _, g := range groupByLocality(hosts) {
		w := g.effectiveWeight(c.overprovisioning)
		if w == 0 {
			continue
		}
		sum += w
		p.cum = append(p.cum, sum)
		p.pickers = append(p.pickers, c.policy.Build(g.healthy))
	}
	switch len(p.pickers) {
	case 0:
		return nil
	case 1:
		return p.pickers[0]
	}
	return p
}
