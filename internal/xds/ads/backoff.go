package ads

import (
	"context"
	"math/rand/v2"
	"time"
)

// Back-off defaults: gRPC's connection back-off shape with full jitter
// (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/).
const (
	DefaultBackoffBase  = 250 * time.Millisecond
	DefaultBackoffMax   = 30 * time.Second
	DefaultBackoffReset = 30 * time.Second
)

// Backoff computes reconnect delays: exponential with full jitter, so a
// fleet of proxies that lost the same control plane does not reconnect in
// lockstep. The zero value uses the defaults. Not safe for concurrent use.
type Backoff struct {
	// Base is the cap of the first delay (default 250ms).
	Base time.Duration
	// Max caps every delay (default 30s).
	Max time.Duration
	// ResetAfter: a stream that lived longer than this starts the sequence
	// again from Base (default 30s).
	ResetAfter time.Duration
	// Rand returns a float in [0, 1) (default math/rand/v2.Float64).
	Rand func() float64

	attempt int
}

// Next returns the delay before the next attempt, given how long the last
// stream lived (0 if it never opened), and advances the sequence. The delay
// is uniform in [0, min(Max, Base·2^n)) where n counts failures since the
// last reset.
func (b *Backoff) Next(lived time.Duration) time.Duration {
	base, maxd, reset := b.Base, b.Max, b.ResetAfter
	if base <= 0 {
		base = DefaultBackoffBase
	}
	if maxd <= 0 {
		maxd = DefaultBackoffMax
	}
	if reset <= 0 {
		reset = DefaultBackoffReset
	}
	if lived > reset {
		b.attempt = 0
	}
	ceil := maxd
	if b.attempt < 32 {
		if c := base << b.attempt; c > 0 && c < maxd {
			ceil = c
		}
	}
	b.attempt++
	r := rand.Float64
	if b.Rand != nil {
		r = b.Rand
	}
	return time.Duration(r() * float64(ceil))
}

// sleep waits d or until ctx ends; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
