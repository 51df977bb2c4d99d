package lb

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testMembers returns hosts 127.0.0.1:<port> for each port, with weights.
func testMembers(ports []int, weights []uint32) []Member {
	ms := make([]Member, len(ports))
	for i, p := range ports {
		ms[i] = Member{Host: NewHost(fmt.Sprintf("127.0.0.1:%d", p), ""), Weight: 1}
		if weights != nil {
			ms[i].Weight = weights[i]
		}
	}
	return ms
}

// pickIndexes picks hashes 0..n-1 and returns the index in members of each
// host picked.
func pickIndexes(t *testing.T, p Picker, members []Member, n int) []int {
	t.Helper()
	got := make([]int, n)
	for i := range got {
		h := p.Pick(&Request{Hash: uint64(i), HasHash: true})
		got[i] = -1
		for j, m := range members {
			if m.Host == h {
				got[i] = j
			}
		}
	}
	return got
}

// The expected tables are Envoy's (test/extensions/load_balancing_policies/
// maglev/maglev_lb_test.cc: Basic, BasicStability, Weighted).
func TestMaglevMatchesEnvoy(t *testing.T) {
	tests := []struct {
		name    string
		size    uint64
		ports   []int
		weights []uint32
		want    []int
	}{
		{
			name:  "basic",
			size:  7,
			ports: []int{90, 91, 92, 93, 94, 95},
			want:  []int{2, 4, 0, 1, 5, 0, 3},
		},
		{
			name:  "order of members does not matter",
			size:  7,
			ports: []int{95, 93, 91, 94, 92, 90},
			want:  []int{4, 3, 5, 2, 0, 5, 1},
		},
		{
			name:    "weighted",
			size:    17,
			ports:   []int{90, 91},
			weights: []uint32{1, 2},
			want:    []int{1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			members := testMembers(tc.ports, tc.weights)
			p := Maglev(tc.size).Build(members)
			got := pickIndexes(t, p, members, len(tc.want))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("table (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMaglevInvalidSizeUsesDefault(t *testing.T) {
	p := Maglev(8).Build(testMembers([]int{1, 2}, nil))
	if got := len(p.(*maglevPicker[uint16]).table); got != DefaultMaglevTableSize {
		t.Errorf("table size = %d, want %d", got, DefaultMaglevTableSize)
	}
}

func TestMaglevWeightsShareTable(t *testing.T) {
	members := testMembers([]int{1, 2, 3, 4}, []uint32{1, 2, 3, 4})
	p := Maglev(0).Build(members).(*maglevPicker[uint16])
	counts := make([]int, len(members))
	for _, i := range p.table {
		counts[i]++
	}
	// sortedByAddress keeps this order; each host's share is within 1% of
	// weight/10 of the table.
	for i, c := range counts {
		want := float64(len(p.table)) * float64(i+1) / 10
		if d := float64(c) - want; d > 0.01*want || d < -0.01*want {
			t.Errorf("host %d has %d entries, want about %.0f", i, c, want)
		}
	}
}
