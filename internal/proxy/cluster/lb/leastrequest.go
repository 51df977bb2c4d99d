package lb

import (
	"math"
	"math/rand/v2"
)

// LeastRequest returns Envoy's LEAST_REQUEST policy.
//
// When all weights are equal it samples choiceCount hosts at random (with
// replacement) and picks the one with the fewest active requests
// ([Host.Active]): power of N choices. When there are no more hosts than
// choices it scans them all instead, breaking ties at random.
//
// When weights differ, host i is picked with probability proportional to its
// effective weight weight_i / (active_i + 1)^activeRequestBias, read at pick
// time.
//
// choiceCount is least_request_lb_config.choice_count; 0 means
// [DefaultChoiceCount]. activeRequestBias is
// least_request_lb_config.active_request_bias; 0 is meaningful (ignore
// active requests: weighted random), so callers pass
// [DefaultActiveRequestBias] when the field is unset. A negative, NaN or
// infinite bias is replaced by the default, as Envoy does at runtime;
// [ValidateLeastRequest] rejects them at config time.
func LeastRequest(choiceCount uint32, activeRequestBias float64) Policy {
	if choiceCount == 0 {
		choiceCount = DefaultChoiceCount
	}
	if !(activeRequestBias >= 0) || math.IsInf(activeRequestBias, 0) {
		activeRequestBias = DefaultActiveRequestBias
	}
	return leastRequest{choices: choiceCount, bias: activeRequestBias}
}

type leastRequest struct {
	choices uint32
	bias    float64
}

var _ Policy = leastRequest{}

func (lr leastRequest) Build(members []Member) Picker {
	if p := trivialPicker(members); p != nil {
		return p
	}
	hosts := hostsOf(members)
	if equalWeights(members) {
		return &choicesPicker{hosts: hosts, choices: uint64(lr.choices)}
	}
	weights := make([]uint64, len(members))
	fw := make([]float64, len(members))
	for i, m := range members {
		weights[i] = weightOf(m)
		fw[i] = float64(weights[i])
	}
	return &weightedLeastPicker{hosts: hosts, weights: fw, cum: newCumulative(weights), bias: lr.bias}
}

// choicesPicker is Envoy's unweighted least request: power of N choices.
type choicesPicker struct {
	hosts   []*Host
	choices uint64
}

func (p *choicesPicker) Pick(*Request) *Host {
	n := uint64(len(p.hosts))
	if n <= p.choices {
		return p.fullScan()
	}
	best := p.hosts[rand.Uint64N(n)]
	bestActive := best.Active()
	for range p.choices - 1 {
		h := p.hosts[rand.Uint64N(n)]
		if a := h.Active(); a < bestActive {
			best, bestActive = h, a
		}
	}
	return best
}

// fullScan returns the host with the fewest active requests, choosing among
// ties uniformly by reservoir sampling (Envoy's FULL_SCAN selection method).
// Sampling N of N hosts with replacement would miss some of them.
func (p *choicesPicker) fullScan() *Host {
	best := p.hosts[0]
	bestActive := best.Active()
	ties := uint64(1)
	for _, h := range p.hosts[1:] {
		switch a := h.Active(); {
		case a < bestActive:
			best, bestActive, ties = h, a, 1
		case a == bestActive:
			ties++
			if rand.Uint64N(ties) == 0 {
				best = h
			}
		}
	}
	return best
}

// rejectionTries bounds the cheap sampling attempts of weightedLeastPicker
// before it falls back to a full pass.
const rejectionTries = 4

// weightedLeastPicker picks host i with probability proportional to
// weights[i] / (active_i+1)^bias.
//
// Envoy keeps an EDF schedule per worker thread and re-inserts a host with
// its current effective weight each time it is picked. A shared, lock-free
// picker cannot mutate a schedule, so it samples the same distribution
// directly, reading active counts at pick time:
//
//  1. Rejection sampling: draw a host by static weight (O(log n)) and accept
//     it with probability 1/(active+1)^bias. An accepted draw is distributed
//     exactly by effective weight, and an idle host is accepted at once.
//  2. After rejectionTries rejections (every host busy), one weighted
//     reservoir pass over all hosts (Chao's algorithm), also exact.
//
// A mixture of exact samplers is exact, so the result does not depend on
// which path was taken.
type weightedLeastPicker struct {
	hosts   []*Host
	weights []float64
	cum     cumulative
	bias    float64
}

func (p *weightedLeastPicker) Pick(*Request) *Host {
	total := p.cum.total()
	if p.bias == 0 {
		return p.hosts[p.cum.search(rand.Uint64N(total))]
	}
	for range rejectionTries {
		h := p.hosts[p.cum.search(rand.Uint64N(total))]
		a := h.Active()
		if a <= 0 || rand.Float64() < p.factor(a) {
			return h
		}
	}
	var sum float64
	var chosen *Host
	for i, h := range p.hosts {
		w := p.weights[i] * p.factor(h.Active())
		if w <= 0 {
			continue
		}
		sum += w
		if rand.Float64()*sum < w {
			chosen = h
		}
	}
	if chosen == nil {
		// Every effective weight underflowed to 0 (huge bias): fall back to
		// static weights.
		return p.hosts[p.cum.search(rand.Uint64N(total))]
	}
	return chosen
}

// factor returns 1/(active+1)^bias, the share of its weight a host with
// active requests in flight keeps.
func (p *weightedLeastPicker) factor(active int64) float64 {
	if active <= 0 {
		return 1
	}
	d := float64(active) + 1
	if p.bias == 1 {
		return 1 / d
	}
	return math.Pow(d, -p.bias)
}
