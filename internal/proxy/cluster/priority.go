package cluster

import (
	"math/rand/v2"
	"sort"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster/lb"
)

// Envoy's defaults for spreading load over priorities.
const (
	DefaultOverprovisioning = 140 // percent (load_assignment.policy.overprovisioning_factor)
	DefaultPanicThreshold   = 50  // percent (common_lb_config.healthy_panic_threshold)
)

// level is one priority with the share of traffic it receives.
type level struct {
	priority uint32
	picker   lb.Picker
	load     uint32 // percent of requests, the levels' loads add up to 100
}

// rebuild recomputes pickers and priority loads from the hosts' health, as
// Envoy does: a priority's health is overprovisioning × healthy / total
// (capped at 100 %); load goes to the lowest priorities first and spills
// over as their health drops; when the levels together are less than fully
// healthy, load is spread in proportion to health. A priority whose healthy
// share is under the panic threshold balances over all its hosts, healthy
// or not (better some errors than overloading the few healthy hosts).
func (c *Cluster) rebuild(all []HostStatus) {
	byPrio := map[uint32][]HostStatus{}
	for _, h := range all {
		byPrio[h.Priority] = append(byPrio[h.Priority], h)
	}
	prios := make([]uint32, 0, len(byPrio))
	for p := range byPrio {
		prios = append(prios, p)
	}
	sort.Slice(prios, func(i, j int) bool { return prios[i] < prios[j] })

	s := &hostSet{all: all}
	health := make([]uint32, len(prios))
	var totalHealth uint32
	for i, p := range prios {
		hosts := byPrio[p]
		var members, healthy []lb.Member
		for _, h := range hosts {
			m := lb.Member{Host: h.Host, Weight: h.Weight}
			members = append(members, m)
			if h.Host.Healthy() {
				healthy = append(healthy, m)
			}
		}
		pct := uint32(100 * len(healthy) / len(hosts))
		health[i] = min(100, c.overprovisioning*uint32(len(healthy))/uint32(len(hosts)))
		totalHealth += health[i]
		var picker lb.Picker
		switch {
		case pct < c.panicThreshold:
			// Panic: all hosts of the priority, whatever their locality
			// (Envoy checks panic before choosing a locality).
			picker = c.policy.Build(members)
		case c.localityLB:
			picker = c.localityWeighted(hosts)
		}
		if picker == nil {
			picker = c.policy.Build(healthy)
		}
		s.levels = append(s.levels, level{priority: p, picker: picker})
	}
	switch {
	case len(s.levels) == 0:
	case totalHealth == 0:
		s.levels[0].load = 100 // nothing healthy anywhere: the first priority panics
	default:
		remaining := uint32(100)
		for i := range s.levels {
			l := min(remaining, health[i])
			if totalHealth < 100 {
				l = health[i] * 100 / totalHealth
			}
			s.levels[i].load = l
			remaining -= min(remaining, l)
		}
		// Rounding leftovers go to the first level with load.
		var sum uint32
		for _, l := range s.levels {
			sum += l.load
		}
		for i := range s.levels {
			if s.levels[i].load > 0 || i == len(s.levels)-1 {
				s.levels[i].load += 100 - min(100, sum)
				break
			}
		}
	}
	c.state.Store(s)
}

// pickLevel chooses the priority for one request.
func (s *hostSet) pickLevel() *level {
	if len(s.levels) == 1 {
		return &s.levels[0]
	}
	r := rand.Uint32N(100)
	for i := range s.levels {
		if r < s.levels[i].load {
			return &s.levels[i]
		}
		r -= s.levels[i].load
	}
	return &s.levels[0]
}
