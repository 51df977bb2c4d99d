package lb

import (
	"math"
	"testing"
)

// Envoy's RingHashLoadBalancerTest.Basic: hosts :90-:95, minimum_ring_size
// 12, expected picks taken from its printed ring.
func TestRingHashMatchesEnvoy(t *testing.T) {
	members := testMembers([]int{90, 91, 92, 93, 94, 95}, nil)
	p := RingHash(12, 0).Build(members)
	if n := len(p.(*ringPicker).hashes); n != 12 {
		t.Fatalf("ring size = %d, want 12", n)
	}
	tests := []struct {
		hash uint64
		want int
	}{
		{0, 4},
		{math.MaxUint64, 4},
		{3551244743356806947, 5},
		{3551244743356806948, 3},
		{16117243373044804880, 0},
		{833437586790550860, 4},
		{833437586790550861, 2},
	}
	for _, tc := range tests {
		got := p.Pick(&Request{Hash: tc.hash, HasHash: true})
		if got != members[tc.want].Host {
			t.Errorf("Pick(%d) = %s, want %s", tc.hash, got.Address, members[tc.want].Host.Address)
		}
	}
}

func TestRingHashSize(t *testing.T) {
	tests := []struct {
		name      string
		min, max  uint64
		weights   []uint32
		wantSize  int
		wantPerID []int
	}{
		{name: "defaults, equal", weights: []uint32{1, 1, 1, 1}, wantSize: 1024, wantPerID: []int{256, 256, 256, 256}},
		// scale = ceil(0.1*1024)/0.1 = 1030.
		{name: "weighted", weights: []uint32{1, 2, 3, 4}, wantSize: 1030, wantPerID: []int{103, 206, 309, 412}},
		// Envoy's comment example: 4 hosts, max ring 6 -> 1.5 points each.
		{name: "capped by max", min: 1024, max: 6, weights: []uint32{1, 1, 1, 1}, wantSize: 6, wantPerID: []int{2, 1, 2, 1}},
		// scale = ceil(1024/1001)*1001 = 2002.
		{name: "light host gets whole points", weights: []uint32{1, 1000}, wantSize: 2002, wantPerID: []int{2, 2000}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ports := make([]int, len(tc.weights))
			for i := range ports {
				ports[i] = 10 + i
			}
			p := RingHash(tc.min, tc.max).Build(testMembers(ports, tc.weights)).(*ringPicker)
			if len(p.hashes) != tc.wantSize {
				t.Errorf("ring size = %d, want %d", len(p.hashes), tc.wantSize)
			}
			per := make([]int, len(tc.weights))
			for _, o := range p.owners {
				per[o]++
			}
			for i := range per {
				if per[i] != tc.wantPerID[i] {
					t.Errorf("points per host = %v, want %v", per, tc.wantPerID)
					break
				}
			}
		})
	}
}
