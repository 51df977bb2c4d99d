package lb

import (
	"math"

	"github.com/cespare/xxhash/v2"
)

// Maglev returns Envoy's MAGLEV policy: a lookup table of tableSize entries
// filled as in the Maglev paper (Eisenbud et al., NSDI 2016, listing 1), with
// Envoy's weighting, and Pick returning table[hash % tableSize]
// ([Request.Hash], or a random hash when the request has none). Each host's
// preference list is offset + i*skip (mod tableSize), with offset =
// xxHash64(address) % tableSize and skip = xxHash64(address, seed 1) %
// (tableSize-1) + 1; a host of weight w gets about w/max(weights) of the
// turns of the heaviest host, so its share of the table is proportional to
// its weight.
//
// tableSize is maglev_lb_config.table_size; 0 means
// [DefaultMaglevTableSize]. It must be prime and at most
// [MaxMaglevTableSize]: [ValidateMaglev] rejects other values at config time,
// and Maglev replaces them by the default, since a table whose size shares a
// factor with some skip could never fill.
//
// Tables use 2 bytes per entry for up to 65535 hosts (4 above), so the
// default table costs 128 KiB per endpoint-set version.
func Maglev(tableSize uint64) Policy {
	if tableSize == 0 || ValidateMaglev(tableSize) != nil {
		tableSize = DefaultMaglevTableSize
	}
	return maglev{size: tableSize}
}

type maglev struct{ size uint64 }

var _ Policy = maglev{}

func (mg maglev) Build(members []Member) Picker {
	if p := trivialPicker(members); p != nil {
		return p
	}
	// Envoy sorts the build entries by address: the table is filled in entry
	// order, so the order decides contested slots.
	members = sortedByAddress(members)
	table := maglevTable(members, mg.size)
	hosts := hostsOf(members)
	if len(hosts) <= math.MaxUint16 {
		t := make([]uint16, len(table))
		for i, v := range table {
			t[i] = uint16(v)
		}
		return &maglevPicker[uint16]{hosts: hosts, table: t}
	}
	return &maglevPicker[uint32]{hosts: hosts, table: table}
}

// maglevTable fills a table of size m (prime) with indexes into members.
//
// Envoy: OriginalMaglevTable::constructImplementationInternals. Envoy
// compares iteration*weight/sum < target with target += max/sum in floating
// point; multiplying through by sum gives the same test in exact integer
// arithmetic. iteration <= m <= MaxMaglevTableSize (the heaviest host fills
// a slot every iteration) and weights are uint32, so nothing overflows.
func maglevTable(members []Member, m uint64) []uint32 {
	type entry struct {
		pos, skip uint64 // pos: next slot in this host's preference list
		weight    uint64
		target    uint64
	}
	entries := make([]entry, len(members))
	var maxWeight uint64
	seeded := xxhash.NewWithSeed(1)
	for i, mb := range members {
		seeded.ResetWithSeed(1)
		_, _ = seeded.WriteString(mb.Host.Address)
		entries[i] = entry{
			pos:    xxhash.Sum64String(mb.Host.Address) % m,
			skip:   seeded.Sum64()%(m-1) + 1,
			weight: weightOf(mb),
		}
		maxWeight = max(maxWeight, entries[i].weight)
	}

	const empty = math.MaxUint32
	table := make([]uint32, m)
	for i := range table {
		table[i] = empty
	}
	filled := uint64(0)
	for iteration := uint64(1); filled < m; iteration++ {
		for i := range entries {
			if filled == m {
				break
			}
			e := &entries[i]
			if iteration*e.weight < e.target {
				continue
			}
			e.target += maxWeight
			for table[e.pos] != empty {
				e.pos = (e.pos + e.skip) % m
			}
			table[e.pos] = uint32(i)
			e.pos = (e.pos + e.skip) % m
			filled++
		}
	}
	return table
}

// maglevPicker is a built Maglev table of host indexes.
type maglevPicker[T uint16 | uint32] struct {
	hosts []*Host
	table []T
}

func (p *maglevPicker[T]) Pick(req *Request) *Host {
	return p.hosts[p.table[requestHash(req)%uint64(len(p.table))]]
}
