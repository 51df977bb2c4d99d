package lb

import (
	"cmp"
	"slices"

	"github.com/cespare/xxhash/v2"
)

// HashString returns the xxHash64 (seed 0) of s, the hash Envoy uses for
// ring hash and Maglev. Callers computing a [Request.Hash] from a route's
// hash_policy use it so that a header value hashes as it would in Envoy.
func HashString(s string) uint64 { return xxhash.Sum64String(s) }

// emptyPicker is the Picker of an empty member list.
type emptyPicker struct{}

func (emptyPicker) Pick(*Request) *Host { return nil }

// singlePicker is the Picker of a one-member list, whatever the policy.
type singlePicker struct{ h *Host }

func (p singlePicker) Pick(*Request) *Host { return p.h }

// trivialPicker returns the picker for zero or one member, or nil when the
// policy has real work to do.
func trivialPicker(members []Member) Picker {
	switch len(members) {
	case 0:
		return emptyPicker{}
	case 1:
		return singlePicker{members[0].Host}
	}
	return nil
}

// weightOf returns m's weight. Envoy's load_balancing_weight is at least 1;
// a zero Weight is read as 1 rather than dropping the host.
func weightOf(m Member) uint64 {
	if m.Weight == 0 {
		return 1
	}
	return uint64(m.Weight)
}

// equalWeights reports whether every member has the same weight, in which
// case Envoy's policies take their unweighted path.
func equalWeights(members []Member) bool {
	for _, m := range members[1:] {
		if weightOf(m) != weightOf(members[0]) {
			return false
		}
	}
	return true
}

// hostsOf returns the members' hosts in order.
func hostsOf(members []Member) []*Host {
	hosts := make([]*Host, len(members))
	for i, m := range members {
		hosts[i] = m.Host
	}
	return hosts
}

// sortedByAddress returns a copy of members sorted by address. Hashing
// policies build from it so that a table or ring depends only on the set of
// members, not on the order EDS listed them: every proxy then maps a hash to
// the same host (Envoy sorts Maglev's build entries for the same reason).
func sortedByAddress(members []Member) []Member {
	s := slices.Clone(members)
	slices.SortStableFunc(s, func(a, b Member) int { return cmp.Compare(a.Host.Address, b.Host.Address) })
	return s
}

// cumulative holds running sums of weights: c[i] is the sum of the weights of
// members 0..i. It turns a uniform draw in [0, total) into a weighted index.
type cumulative []uint64

func newCumulative(weights []uint64) cumulative {
	c := make(cumulative, len(weights))
	var sum uint64
	for i, w := range weights {
		sum += w
		c[i] = sum
	}
	return c
}

func (c cumulative) total() uint64 { return c[len(c)-1] }

// search returns the index of the member owning slot x, x in [0, total): the
// first i with c[i] > x. Hand-written so that Pick inlines it without a
// closure.
func (c cumulative) search(x uint64) int {
	lo, hi := 0, len(c)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if c[m] > x {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}
