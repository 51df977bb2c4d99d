package lb

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// RingHash returns Envoy's RING_HASH policy (a ketama ring, hash_function
// XX_HASH). Each host is placed on the ring at xxHash64("<address>_<i>") for
// i = 0, 1, ...; the number of points is proportional to its weight, scaled
// so that the lightest host gets at least ceil(minRingSize * its share)
// points and the ring has at most maxRingSize points. Pick maps
// [Request.Hash] (a random hash when the request has none) to the first
// point at or after it, wrapping around.
//
// minRingSize and maxRingSize are ring_hash_lb_config.minimum_ring_size and
// maximum_ring_size; 0 means [DefaultMinRingSize] and [DefaultMaxRingSize].
// Values above [MaxRingSize] are clamped to it; [ValidateRingHash] rejects
// them, and a minimum above the maximum, at config time.
//
// Unlike Envoy, hosts are laid out in address order, so that when weights do
// not divide the ring evenly the ring still does not depend on EDS order.
func RingHash(minRingSize, maxRingSize uint64) Policy {
	minRingSize, maxRingSize = ringSizes(minRingSize, maxRingSize)
	return ringHash{min: min(minRingSize, MaxRingSize), max: min(maxRingSize, MaxRingSize)}
}

type ringHash struct{ min, max uint64 }

var _ Policy = ringHash{}

func (rh ringHash) Build(members []Member) Picker {
	if p := trivialPicker(members); p != nil {
		return p
	}
	members = sortedByAddress(members)

	// Envoy: RingHashLoadBalancer::Ring::Ring, including its floating-point
	// arithmetic, so that rings match Envoy's point for point.
	var total uint64
	for _, m := range members {
		total += weightOf(m)
	}
	sum := float64(total)
	minNorm := 1.0
	for _, m := range members {
		minNorm = min(minNorm, float64(weightOf(m))/sum)
	}
	scale := min(math.Ceil(minNorm*float64(rh.min))/minNorm, float64(rh.max))

	type point struct {
		hash uint64
		host uint32
	}
	ring := make([]point, 0, uint64(math.Ceil(scale)))
	var key []byte
	var current, target float64
	for i, m := range members {
		key = append(append(key[:0], m.Host.Address...), '_')
		prefix := len(key)
		target += scale * (float64(weightOf(m)) / sum)
		for j := uint64(0); current < target; j++ {
			key = strconv.AppendUint(key[:prefix], j, 10)
			ring = append(ring, point{xxhash.Sum64(key), uint32(i)})
			current++
		}
	}
	slices.SortFunc(ring, func(a, b point) int {
		return cmp.Or(cmp.Compare(a.hash, b.hash), cmp.Compare(a.host, b.host))
	})

	p := &ringPicker{
		hosts:  hostsOf(members),
		hashes: make([]uint64, len(ring)),
		owners: make([]uint32, len(ring)),
	}
	for i, pt := range ring {
		p.hashes[i], p.owners[i] = pt.hash, pt.host
	}
	return p
}

// ringPicker is a built ring. Points are kept as two parallel slices: the
// binary search touches only hashes, and owners holds indexes rather than
// pointers so that a ring of millions of points is not scanned by the GC.
type ringPicker struct {
	hosts  []*Host
	hashes []uint64 // sorted
	owners []uint32 // owners[i] indexes hosts
}

func (p *ringPicker) Pick(req *Request) *Host {
	if len(p.hashes) == 0 {
		// Cannot happen (both ring bounds are >= 1, so every ring has a
		// point); kept so that a bug cannot panic the proxy.
		return p.hosts[rand.Uint64N(uint64(len(p.hosts)))]
	}
	h := requestHash(req)
	// First point with hash >= h, wrapping to the first point (Envoy's port of
	// ketama_get_server).
	lo, hi := 0, len(p.hashes)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if p.hashes[m] >= h {
			hi = m
		} else {
			lo = m + 1
		}
	}
	if lo == len(p.hashes) {
		lo = 0
	}
	return p.hosts[p.owners[lo]]
}

// requestHash returns the request's hash, or a random one when it has none
// (Envoy: "if no hash is computed, a random host is picked").
func requestHash(req *Request) uint64 {
	if req != nil && req.HasHash {
		return req.Hash
	}
	return rand.Uint64()
}
