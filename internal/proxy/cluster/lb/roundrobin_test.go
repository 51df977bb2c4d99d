package lb

import (
	"slices"
	"strings"
	"testing"
)

// pickSequence returns the first letters of the addresses of n picks.
func pickSequence(p Picker, n int) string {
	var b strings.Builder
	for range n {
		b.WriteString(p.Pick(nil).Address[:1])
	}
	return b.String()
}

func lettered(weights ...uint32) []Member {
	ms := make([]Member, len(weights))
	for i, w := range weights {
		ms[i] = Member{Host: NewHost(string(rune('A'+i))+":80", ""), Weight: w}
	}
	return ms
}

func TestRoundRobinEqualWeightsRotate(t *testing.T) {
	p := RoundRobin().Build(lettered(5, 5, 5, 5))
	// The start is random; after that it is strict rotation.
	seq := pickSequence(p, 12)
	for i := 1; i < len(seq); i++ {
		if want := 'A' + (seq[i-1]-'A'+1)%4; seq[i] != want {
			t.Fatalf("sequence = %q, want a rotation of ABCD", seq)
		}
	}
}

func TestRoundRobinWeightedCycle(t *testing.T) {
	tests := []struct {
		name    string
		weights []uint32
		cycle   int    // sum of weights after dividing by their GCD
		maxRun  int    // longest run of one host allowed within a cycle
		want    string // counts per host over a cycle, as letters
	}{
		{name: "3:1", weights: []uint32{3, 1}, cycle: 4, maxRun: 3, want: "AAAB"},
		{name: "1,2,3,4", weights: []uint32{1, 2, 3, 4}, cycle: 10, maxRun: 2, want: "ABBCCCDDDD"},
		{name: "gcd reduced", weights: []uint32{300, 100}, cycle: 4, maxRun: 3, want: "AAAB"},
		{name: "1:5", weights: []uint32{1, 5}, cycle: 6, maxRun: 5, want: "ABBBBB"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := RoundRobin().Build(lettered(tc.weights...))
			if got := int(p.(*weightedRotationPicker).total); got != tc.cycle {
				t.Fatalf("cycle = %d, want %d", got, tc.cycle)
			}
			// Every window of one cycle, from any starting point, has exact
			// counts.
			seq := pickSequence(p, 5*tc.cycle)
			for i := 0; i+tc.cycle <= len(seq); i++ {
				if got := sortString(seq[i : i+tc.cycle]); got != tc.want {
					t.Fatalf("window %d of %q has %q, want %q", i, seq, got, tc.want)
				}
			}
			run := 1
			for i := 1; i < len(seq); i++ {
				if seq[i] == seq[i-1] {
					run++
				} else {
					run = 1
				}
				if run > tc.maxRun {
					t.Fatalf("%q has a run longer than %d", seq, tc.maxRun)
				}
			}
		})
	}
}

func TestRoundRobinInterleaves(t *testing.T) {
	seq := pickSequence(RoundRobin().Build(lettered(1, 2, 3, 4)), 30)
	const cycle = "ADCBDCBDDC"
	if !strings.Contains(cycle+cycle+cycle+cycle, seq) {
		t.Errorf("sequence %q is not a rotation of %s repeated", seq, cycle)
	}
}

func TestRoundRobinHugeWeights(t *testing.T) {
	// Weights with a sum above 2^32 take the 128-bit path of mulMod.
	p := RoundRobin().Build(lettered(1<<32-1, 1<<32-2, 7))
	counts := map[byte]int{}
	for _, c := range []byte(pickSequence(p, 30000)) {
		counts[c]++
	}
	if counts['A'] < 14000 || counts['B'] < 14000 {
		t.Errorf("counts = %v, want A and B about half each", counts)
	}
}

func TestGoldenStrideCoprime(t *testing.T) {
	for total := uint64(1); total < 2000; total++ {
		s := goldenStride(total)
		if total >= 2 && (s == 0 || s >= total || gcd(s, total) != 1) {
			t.Fatalf("goldenStride(%d) = %d", total, s)
		}
	}
}

func sortString(s string) string {
	b := []byte(s)
	slices.Sort(b)
	return string(b)
}
