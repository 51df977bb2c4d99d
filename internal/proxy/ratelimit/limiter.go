package ratelimit

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	commonrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
)

// Entry is one key/value entry of a rate limit descriptor
// (envoy.extensions.common.ratelimit.v3.RateLimitDescriptor.Entry).
type Entry struct{ Key, Value string }

// Descriptors are the rate limit descriptors a request produced, flattened:
// Entries holds every descriptor's entries back to back and Ends[i] is the
// end of descriptor i in Entries. The flat form lets callers build them in
// stack arrays without allocating.
type Descriptors struct {
	Entries []Entry
	Ends    []int
}

// Len returns the number of descriptors.
func (d *Descriptors) Len() int { return len(d.Ends) }

// At returns descriptor i.
func (d *Descriptors) At(i int) []Entry {
	start := 0
	if i > 0 {
		start = d.Ends[i-1]
	}
	return d.Entries[start:d.Ends[i]]
}

// Limiter is Envoy's local rate limiter: an optional default bucket plus
// one bucket per configured descriptor. It is safe for concurrent use.
type Limiter struct {
	// Default is the filter's token_bucket; nil means requests that match
	// no descriptor are not limited.
	Default *Bucket
	// AlwaysConsumeDefault is always_consume_default_token_bucket (Envoy's
	// default true): the default bucket is consumed also by requests that
	// matched a descriptor; when false only by those that matched none.
	AlwaysConsumeDefault bool

	// descriptors, ordered by fill rate, lowest first: a request that
	// matches several takes from the most restrictive first (Envoy does
	// the same).
	descriptors []descriptor
}

type descriptor struct {
	entries []Entry
	bucket  *Bucket
}

// NewLimiter builds a Limiter from a default bucket (may be nil) and the
// filter's descriptors. Errors name fields below "descriptors".
func NewLimiter(def *Bucket, alwaysConsumeDefault bool, ds []*commonrlv3.LocalRateLimitDescriptor) (*Limiter, error) {
	l := &Limiter{Default: def, AlwaysConsumeDefault: alwaysConsumeDefault}
	var errs []error
	for i, d := range ds {
		path := fmt.Sprintf("descriptors[%d]", i)
		if len(d.GetEntries()) == 0 {
			errs = append(errs, fmt.Errorf("%s.entries: at least one entry is required", path))
			continue
		}
		var c descriptor
		for j, e := range d.GetEntries() {
			if e.GetKey() == "" {
				errs = append(errs, fmt.Errorf("%s.entries[%d].key: required", path, j))
			}
			if e.GetValue() == "" {
				errs = append(errs, fmt.Errorf("%s.entries[%d].value: required (wildcard descriptors are not supported)", path, j))
			}
			c.entries = append(c.entries, Entry{Key: e.GetKey(), Value: e.GetValue()})
		}
		b, err := NewBucket(d.GetTokenBucket())
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.%w", path, err))
			continue
		}
		c.bucket = b
		for _, prev := range l.descriptors {
			if slices.Equal(prev.entries, c.entries) {
				errs = append(errs, fmt.Errorf("%s.entries: the same entries as an earlier descriptor", path))
			}
		}
		l.descriptors = append(l.descriptors, c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.SortStableFunc(l.descriptors, func(a, b descriptor) int {
		// Compare perFill/interval without division.
		x := a.bucket.perFill * int64(b.bucket.interval)
		y := b.bucket.perFill * int64(a.bucket.interval)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	return l, nil
}

// HasDescriptors reports whether any descriptor is configured, i.e.
// whether callers need to build request descriptors at all.
func (l *Limiter) HasDescriptors() bool { return len(l.descriptors) > 0 }

// Allow decides one request with descriptors ds, as Envoy's
// LocalRateLimiterImpl::requestAllowed does: every configured descriptor
// equal to one of ds takes a token, most restrictive first, and the first
// one that has none refuses the request; then the default bucket takes one
// if the request matched no descriptor or AlwaysConsumeDefault is set.
// Tokens taken before a refusal are not returned.
//
// b is the bucket that decided (the refusing one, else the most
// restrictive matched descriptor, else the default), for the
// x-ratelimit-* headers; it is nil when nothing applied.
func (l *Limiter) Allow(ds *Descriptors) (ok bool, b *Bucket) {
	var first *Bucket
	if ds != nil && ds.Len() > 0 {
		for i := range l.descriptors {
			d := &l.descriptors[i]
			if !matchesAny(d.entries, ds) {
				continue
			}
			if !d.bucket.Allow() {
				return false, d.bucket
			}
			if first == nil {
				first = d.bucket
			}
		}
	}
	if first == nil || l.AlwaysConsumeDefault {
		if l.Default == nil {
			return true, first
		}
		if !l.Default.Allow() {
			return false, l.Default
		}
		if first == nil {
			return true, l.Default
		}
	}
	return true, first
}

func matchesAny(entries []Entry, ds *Descriptors) bool {
	for i := range ds.Len() {
		if slices.Equal(entries, ds.At(i)) {
			return true
		}
	}
	return false
}

// State returns the bucket's max_tokens, the tokens left now, and the time
// until its next fill, for the x-ratelimit-* headers.
func (b *Bucket) State() (limit, remaining int64, reset time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	b.refill(now)
	reset = b.interval - now.Sub(b.last)
	return b.max, b.tokens, reset
}

// full reports whether the bucket holds max_tokens now.
func (b *Bucket) full() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(time.Now())
	return b.tokens == b.max
}

// full reports whether every bucket of l is full, i.e. whether l is
// indistinguishable from a new Limiter.
func (l *Limiter) full() bool {
	if l.Default != nil && !l.Default.full() {
		return false
	}
	for i := range l.descriptors {
		if !l.descriptors[i].bucket.full() {
			return false
		}
	}
	return true
}

// sweepAbove is the number of tracked connections above which
// PerConnection forgets the limiters whose buckets are full again.
const sweepAbove = 1024

// PerConnection keeps one Limiter per downstream connection, Envoy's
// local_rate_limit_per_downstream_connection. Connections are told apart
// by their remote "ip:port", unique while a connection is open. There is
// no close hook: once more than sweepAbove connections are tracked, the
// limiters whose buckets have all refilled are dropped, which changes
// nothing since a new Limiter starts full too. It is safe for concurrent
// use.
type PerConnection struct {
	newLimiter func() *Limiter
	mu         sync.Mutex
	m          map[string]*Limiter
}

// NewPerConnection returns a PerConnection that makes each connection's
// Limiter with newLimiter.
func NewPerConnection(newLimiter func() *Limiter) *PerConnection {
	return &PerConnection{newLimiter: newLimiter, m: map[string]*Limiter{}}
}

// For returns the Limiter of the connection from remoteAddr.
func (p *PerConnection) For(remoteAddr string) *Limiter {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l, ok := p.m[remoteAddr]; ok {
		return l
	}
	if len(p.m) >= sweepAbove {
		for k, l := range p.m {
			if l.full() {
				delete(p.m, k)
			}
		}
	}
	l := p.newLimiter()
	p.m[remoteAddr] = l
	return l
}

// Len returns the number of connections tracked.
func (p *PerConnection) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m)
}
