package lb

import (
	"math"
	"testing"
)

// busy marks n requests in flight on h until the test ends.
func busy(t *testing.T, h *Host, n int) {
	t.Helper()
	for range n {
		h.Begin()
	}
	t.Cleanup(func() {
		for range n {
			h.End()
		}
	})
}

func countPicks(p Picker, members []Member, n int) []int {
	counts := make([]int, len(members))
	for range n {
		h := p.Pick(nil)
		for i, m := range members {
			if m.Host == h {
				counts[i]++
			}
		}
	}
	return counts
}

func TestLeastRequestAvoidsBusyHost(t *testing.T) {
	const picks = 20000
	tests := []struct {
		name    string
		choices uint32
		bias    float64
		weights []uint32
		busy    int     // index of the busy host
		active  int     // its requests in flight
		maxFrac float64 // largest share of picks it may get
	}{
		// Full scan: never picked.
		{name: "two hosts", weights: []uint32{1, 1}, busy: 0, active: 5, maxFrac: 0},
		{name: "choices cover all", choices: 4, weights: []uint32{1, 1, 1, 1}, busy: 2, active: 5, maxFrac: 0},
		// P2C: picked only when both samples are it, 1/100 of the time.
		{name: "p2c of ten", weights: []uint32{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, busy: 3, active: 50, maxFrac: 0.02},
		// 4/1001 of effective weight 6.004: 0.07%.
		{name: "weighted", bias: 1, weights: []uint32{1, 2, 3, 4}, busy: 3, active: 1000, maxFrac: 0.005},
		// bias 2: 4/1001^2, practically never.
		{name: "weighted bias 2", bias: 2, weights: []uint32{1, 2, 3, 4}, busy: 3, active: 1000, maxFrac: 0.001},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			members := lettered(tc.weights...)
			busy(t, members[tc.busy].Host, tc.active)
			bias := tc.bias
			if bias == 0 {
				bias = DefaultActiveRequestBias
			}
			counts := countPicks(LeastRequest(tc.choices, bias).Build(members), members, picks)
			if frac := float64(counts[tc.busy]) / picks; frac > tc.maxFrac {
				t.Errorf("busy host got %.4f of picks (%v), want <= %.4f", frac, counts, tc.maxFrac)
			}
		})
	}
}

// With weights 1 and 3 and the heavy host at 2 in flight, effective weights
// are 1 and 1: an even split.
func TestLeastRequestEffectiveWeight(t *testing.T) {
	const picks = 100000
	members := lettered(1, 3)
	busy(t, members[1].Host, 2)
	counts := countPicks(LeastRequest(0, 1).Build(members), members, picks)
	// 6 sigma of a binomial(100000, 0.5) is about 950.
	if d := counts[0] - picks/2; d > 1000 || d < -1000 {
		t.Errorf("counts = %v, want about even", counts)
	}
}

// All hosts busy: rejection sampling gives up and the full pass decides;
// proportions must still follow effective weights.
func TestLeastRequestAllBusy(t *testing.T) {
	const picks = 100000
	members := lettered(1, 1, 2)
	busy(t, members[0].Host, 99)  // 1/100
	busy(t, members[1].Host, 99)  // 1/100
	busy(t, members[2].Host, 199) // 2/200
	counts := countPicks(LeastRequest(0, 1).Build(members), members, picks)
	for i, c := range counts {
		want := picks / 3
		if d := c - want; d > 1000 || d < -1000 {
			t.Errorf("host %d got %d picks (%v), want about %d", i, c, counts, want)
		}
	}
}

func TestLeastRequestBadBiasUsesDefault(t *testing.T) {
	for _, b := range []float64{-1, math.NaN(), math.Inf(1)} {
		if got := LeastRequest(0, b).(leastRequest).bias; got != DefaultActiveRequestBias {
			t.Errorf("LeastRequest(0, %v) bias = %v, want %v", b, got, DefaultActiveRequestBias)
		}
	}
}
