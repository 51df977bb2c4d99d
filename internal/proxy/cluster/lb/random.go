package lb

import "math/rand/v2"

// Random returns the RANDOM policy: each pick chooses a host at random with
// probability weight/sum(weights). Envoy's RANDOM ignores
// load_balancing_weight; honouring it makes RANDOM consistent with the other
// policies and is the same thing when weights are equal, as they usually are
// with RANDOM.
func Random() Policy { return random{} }

type random struct{}

var _ Policy = random{}

func (random) Build(members []Member) Picker {
	if p := trivialPicker(members); p != nil {
		return p
	}
	p := &randomPicker{hosts: hostsOf(members)}
	if !equalWeights(members) {
		weights := make([]uint64, len(members))
		for i, m := range members {
			weights[i] = weightOf(m)
		}
		p.cum = newCumulative(weights)
	}
	return p
}

type randomPicker struct {
	hosts []*Host
	cum   cumulative // nil when all weights are equal
}

func (p *randomPicker) Pick(*Request) *Host {
	if p.cum == nil {
		return p.hosts[rand.Uint64N(uint64(len(p.hosts)))]
	}
	return p.hosts[p.cum.search(rand.Uint64N(p.cum.total()))]
}
