// Package lbtest is the conformance suite for lb.Policy implementations:
// every policy must pass Run.
package lbtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster/lb"
)

// Options selects the checks that apply to a policy. The zero value runs the
// checks every policy must pass, with exact proportions expected.
type Options struct {
	// Weighted enables the check that Member.Weight is honoured: weights
	// 1, 2, 3, 4 get shares 10%, 20%, 30%, 40%.
	Weighted bool

	// Hashing enables the consistent-hashing checks: picking the same
	// Request.Hash again, or from a picker built from the same members in
	// another order, returns the same host.
	Hashing bool

	// MaxMoved, with Hashing, enables the consistency check: after one of 10
	// equally weighted hosts is removed, at most this fraction of hashes may
	// map to a different host. The removed host's hashes (1/10 on average)
	// must move. A good consistent hash moves few others: Maglev about 1%,
	// Envoy's ring hash about 6% (the ring is resized so that each host
	// keeps a whole number of points). Zero disables the check.
	MaxMoved float64

	// Slack is the error allowed on each host's share of picks, relative to
	// its expected share, on top of sampling noise. Zero means the policy's
	// shares are exact (round robin, random, least request on idle hosts).
	// Hash policies need some: a ring of 1024 random points, or a Maglev
	// table, divides the hash space only approximately.
	Slack float64
}

// samples is the number of picks behind each distribution check. With a
// 6-sigma bound on sampling noise, a correct policy fails about once in 10^8
// runs.
const samples = 100_000

// Run runs the conformance suite against the policies newPolicy returns.
func Run(t *testing.T, newPolicy func() lb.Policy, opts Options) {
	t.Run("Empty", func(t *testing.T) {
		for _, members := range [][]lb.Member{nil, {}} {
			p := newPolicy().Build(members)
			for _, req := range []*lb.Request{nil, {}, {Hash: 42, HasHash: true}} {
				if h := p.Pick(req); h != nil {
					t.Fatalf("Pick(%+v) on an empty set = %s, want nil", req, h.Address)
				}
			}
		}
	})

	t.Run("SingleHost", func(t *testing.T) {
		members := Members(7)[:1]
		p := newPolicy().Build(members)
		for i := range 1000 {
			req := &lb.Request{Hash: rand.Uint64(), HasHash: i%2 == 0}
			if h := p.Pick(req); h != members[0].Host {
				t.Fatalf("Pick = %v, want the only host", h)
			}
		}
	})

	t.Run("BuildDoesNotModifyMembers", func(t *testing.T) {
		members := Members(1, 5, 2, 4, 3)
		slices.Reverse(members)
		before := slices.Clone(members)
		newPolicy().Build(members)
		if !slices.Equal(before, members) {
			t.Fatal("Build modified its members argument")
		}
	})

	t.Run("EqualWeights", func(t *testing.T) {
		// Equal weights other than 1 must take the unweighted path too.
		for _, w := range []uint32{1, 7} {
			members := Members(w, w, w, w, w, w, w, w)
			CheckShares(t, newPolicy().Build(members), members, opts.Slack)
		}
	})

	if opts.Weighted {
		t.Run("Weights", func(t *testing.T) {
			members := Members(1, 2, 3, 4)
			CheckShares(t, newPolicy().Build(members), members, opts.Slack)
			// Order of members is irrelevant to the shares.
			slices.Reverse(members)
			CheckShares(t, newPolicy().Build(members), members, opts.Slack)
		})
	}

	t.Run("NotAllocating", func(t *testing.T) {
		members := Members(1, 1, 2, 3, 1, 1, 1, 1)
		for _, weighted := range []bool{false, true} {
			ms := members
			if !weighted {
				ms = Members(1, 1, 1, 1, 1, 1, 1, 1)
			}
			p := newPolicy().Build(ms)
			for _, busy := range []int{0, 100} {
				// Busy hosts send least request down its slower paths.
				for _, m := range ms {
					for range busy {
						m.Host.Begin()
					}
				}
				req := &lb.Request{Hash: 12345, HasHash: true}
				if n := testing.AllocsPerRun(1000, func() { p.Pick(req) }); n != 0 {
					t.Errorf("Pick (weighted %v, %d in flight) allocates %v times per call, want 0", weighted, busy, n)
				}
				for _, m := range ms {
					for range busy {
						m.Host.End()
					}
				}
			}
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		members := Members(1, 2, 3, 4, 1, 1, 1, 1)
		policy := newPolicy()
		p := policy.Build(members)
		const goroutines, picks = 8, 2000
		errs := make(chan error, goroutines)
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				// Rebuilding concurrently from the same slice must be safe too.
				q := p
				if g%2 == 1 {
					q = policy.Build(members)
				}
				req := &lb.Request{}
				for i := range picks {
					req.Hash, req.HasHash = rand.Uint64(), i%3 == 0
					h := q.Pick(req)
					if index(members, h) < 0 {
						errs <- fmt.Errorf("pick returned %v, not a member", h)
						return
					}
					// Move in-flight counts while others pick.
					h.Begin()
					if i%2 == 0 {
						h.End()
					} else {
						defer h.End()
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	if !opts.Hashing {
		return
	}

	t.Run("SameHashSameHost", func(t *testing.T) {
		members := Members(1, 2, 1, 3, 1, 1, 2, 1, 1, 1)
		p := newPolicy().Build(members)
		shuffled := slices.Clone(members)
		rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		q := newPolicy().Build(shuffled)
		for range 2000 {
			req := &lb.Request{Hash: rand.Uint64(), HasHash: true}
			first := p.Pick(req)
			if again := p.Pick(req); again != first {
				t.Fatalf("hash %d: picked %s then %s", req.Hash, first.Address, again.Address)
			}
			if other := q.Pick(req); other != first {
				t.Fatalf("hash %d: picked %s, and %s when members are shuffled", req.Hash, first.Address, other.Address)
			}
		}
	})

	if opts.MaxMoved <= 0 {
		return
	}

	t.Run("Consistency", func(t *testing.T) {
		members := Members(1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
		const removed = 3
		before := newPolicy().Build(members)
		after := newPolicy().Build(slices.Delete(slices.Clone(members), removed, removed+1))
		const hashes = 20_000
		moved, owned := 0, 0
		for i := range hashes {
			req := &lb.Request{Hash: lb.HashString(fmt.Sprintf("key-%d", i)), HasHash: true}
			b, a := before.Pick(req), after.Pick(req)
			if b == members[removed].Host {
				owned++
			}
			if a == members[removed].Host {
				t.Fatalf("hash %d still maps to the removed host", req.Hash)
			}
			if a != b {
				moved++
			}
		}
		frac := float64(moved) / hashes
		t.Logf("removing 1 of 10 hosts moved %.3f of hashes (%.3f were on it)", frac, float64(owned)/hashes)
		if frac > opts.MaxMoved {
			t.Errorf("removing 1 of 10 hosts moved %.3f of hashes, want <= %.3f", frac, opts.MaxMoved)
		}
	})
}

// Members returns one member per weight, with hosts 10.0.0.<i+1>:8080.
func Members(weights ...uint32) []lb.Member {
	ms := make([]lb.Member, len(weights))
	for i, w := range weights {
		ms[i] = lb.Member{Host: lb.NewHost(fmt.Sprintf("10.0.0.%d:8080", i+1), ""), Weight: w}
	}
	return ms
}

// CheckShares picks samples times from p (requests without a hash) and
// checks that each member gets weight/sum(weights) of the picks, within 6
// standard deviations of sampling noise plus slack (relative).
func CheckShares(t *testing.T, p lb.Picker, members []lb.Member, slack float64) {
	t.Helper()
	var total float64
	for _, m := range members {
		total += float64(m.Weight)
	}
	counts := make([]int, len(members))
	req := &lb.Request{}
	for range samples {
		i := index(members, p.Pick(req))
		if i < 0 {
			t.Fatal("Pick returned a host that is not a member")
		}
		counts[i]++
	}
	for i, m := range members {
		share := float64(m.Weight) / total
		want := share * samples
		tol := 6*math.Sqrt(want*(1-share)) + slack*want
		if got := float64(counts[i]); math.Abs(got-want) > tol {
			t.Errorf("host %s (weight %d) got %d of %d picks, want %.0f ± %.0f (all: %v)",
				m.Host.Address, m.Weight, counts[i], samples, want, tol, counts)
		}
	}
}

func index(members []lb.Member, h *lb.Host) int {
	return slices.IndexFunc(members, func(m lb.Member) bool { return m.Host == h })
}
