package lb

import (
	"math/bits"
	"math/rand/v2"
	"sync/atomic"
)

// RoundRobin returns Envoy's ROUND_ROBIN policy. With equal weights hosts are
// picked in strict rotation. With unequal weights each host gets exactly
// weight/sum(weights) of the picks over every cycle of sum(weights) picks
// (after dividing the weights by their GCD), spread out rather than in
// bursts: weights 1, 2, 3, 4 give A D C B D C B D D C, not
// A B B C C C D D D D.
//
// Each picker starts its rotation at a random position, as Envoy does, so
// that frequent endpoint updates do not keep sending the first request of
// every version to the same host.
func RoundRobin() Policy { return roundRobin{} }

type roundRobin struct{}

var _ Policy = roundRobin{}

func (roundRobin) Build(members []Member) Picker {
	if p := trivialPicker(members); p != nil {
		return p
	}
	hosts := hostsOf(members)
	if equalWeights(members) {
		p := &rotationPicker{hosts: hosts}
		p.next.n.Store(rand.Uint64N(uint64(len(hosts))))
		return p
	}

	var g uint64
	for _, m := range members {
		g = gcd(g, weightOf(m))
	}
	weights := make([]uint64, len(members))
	for i, m := range members {
		weights[i] = weightOf(m) / g
	}
	cum := newCumulative(weights)
	total := cum.total()
	p := &weightedRotationPicker{hosts: hosts, cum: cum, total: total, stride: goldenStride(total)}
	p.next.n.Store(rand.Uint64N(total))
	return p
}

// rotationPicker is round robin over equally weighted hosts.
type rotationPicker struct {
	hosts []*Host
	next  paddedCounter
}

func (p *rotationPicker) Pick(*Request) *Host {
	k := p.next.n.Add(1) - 1
	return p.hosts[k%uint64(len(p.hosts))]
}

// weightedRotationPicker is weighted round robin without a schedule table.
//
// Lay the hosts' reduced weights end to end on [0, total): host i owns
// [cum[i-1], cum[i]). Pick number k takes slot (k*stride) mod total. Since
// stride is coprime with total, k -> slot is a bijection on each cycle of
// total picks, so every host gets exactly its weight per cycle. Since stride
// is close to total/φ, consecutive slots land far apart (Fibonacci hashing,
// the three-distance theorem), so a host's picks are spread through the
// cycle instead of bunched. This takes O(log n) per pick and O(n) memory
// however large the weights are, where Envoy's EDF scheduler needs a lock
// (it is per worker thread there) and nginx's smooth WRR needs a table of
// total entries.
type weightedRotationPicker struct {
	hosts  []*Host
	cum    cumulative
	total  uint64 // cycle length: sum of the reduced weights
	stride uint64 // coprime with total, about total/φ
	next   paddedCounter
}

func (p *weightedRotationPicker) Pick(*Request) *Host {
	k := p.next.n.Add(1) - 1
	slot := mulMod(k%p.total, p.stride, p.total)
	return p.hosts[p.cum.search(slot)]
}

// paddedCounter is an atomic counter alone on its cache line, so that
// Picks incrementing it on one core do not keep evicting the picker's
// read-only fields from the caches of the others.
type paddedCounter struct {
	_ [64]byte
	n atomic.Uint64
	_ [56]byte
}

// mulMod returns a*b mod m for a, b < m.
func mulMod(a, b, m uint64) uint64 {
	if m <= 1<<32 {
		return a * b % m
	}
	hi, lo := bits.Mul64(a, b)
	return bits.Rem64(hi, lo, m)
}

// goldenStride returns the integer in [1, total) nearest total/φ that is
// coprime with total (1 when total < 2).
func goldenStride(total uint64) uint64 {
	if total < 3 {
		return 1
	}
	const invPhi = 0.6180339887498949
	target := uint64(float64(total) * invPhi)
	for d := uint64(0); ; d++ {
		if c := target + d; c < total && gcd(c, total) == 1 {
			return c
		}
		if d < target {
			if c := target - d; c >= 1 && gcd(c, total) == 1 {
				return c
			}
		}
	}
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
