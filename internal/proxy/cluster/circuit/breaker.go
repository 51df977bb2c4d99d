package circuit

import (
	"math"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// Resource is one of the four things a Breaker counts.
type Resource uint8

// The resources, in the order of Envoy's Thresholds fields.
const (
	Connections     Resource = iota // max_connections
	PendingRequests                 // max_pending_requests
	Requests                        // max_requests
	Retries                         // max_retries or retry_budget
)

const numResources = 4

// String returns the stem Envoy's circuit-breaker stats use for r: "cx",
// "rq_pending", "rq" or "rq_retry" (as in cx_open, upstream_rq_retry_overflow).
func (r Resource) String() string {
	switch r {
	case Connections:
		return "cx"
	case PendingRequests:
		return "rq_pending"
	case Requests:
		return "rq"
	case Retries:
		return "rq_retry"
	}
	return "unknown"
}

// Metrics receives a Breaker's overflow events, to feed counters such as
// Envoy's upstream_cx_overflow, upstream_rq_pending_overflow and
// upstream_rq_retry_overflow. Overflow is called on the goroutine whose
// Acquire was refused, concurrently from many goroutines; it must be cheap
// and must not call back into the Breaker. Gauges are not pushed: read them
// with [Breaker.Stats] when exporting (for example from a GaugeFunc), which
// costs the hot path nothing.
type Metrics interface {
	Overflow(r Resource)
}

// Stats describes one resource of a Breaker at the moment it was read.
type Stats struct {
	// Active is the number in use.
	Active uint64
	// Limit is the current limit. For retries under a budget it is the
	// budget computed from the requests active now.
	Limit uint64
	// Overflows counts the acquisitions refused since the Breaker was made.
	Overflows uint64
}

// Open reports whether the breaker is open for the resource: a new
// acquisition would be refused (Envoy's <resource>_open gauge).
func (s Stats) Open() bool { return s.Active >= s.Limit }

// Remaining is how many more acquisitions would succeed (Envoy's
// remaining_* gauges, published when Thresholds.TrackRemaining is set).
func (s Stats) Remaining() uint64 {
	if s.Active >= s.Limit {
		return 0
	}
	return s.Limit - s.Active
}

// Breaker enforces one cluster's thresholds for one routing priority.
//
// A Breaker is long-lived: it belongs to the cluster, not to a config
// snapshot, so the counts of what is in flight stay right across updates;
// a new snapshot calls Update with its thresholds. Lowering a limit below
// what is in flight refuses new acquisitions until enough are released;
// nothing in flight is cancelled.
//
// Each successful Acquire must be paired with one Release of the same
// resource. A Release without an Acquire is ignored (the count never goes
// below zero). All methods are safe for concurrent use; Acquire and Release
// are lock-free and do not allocate. A Breaker must not be copied. The zero
// Breaker has Envoy's [Defaults] and no Metrics.
type Breaker struct {
	limits  atomic.Pointer[limits] // nil means defaultLimits
	metrics Metrics
	// active counts are written by every request; keep each on its own
	// cache line so cores do not contend for one.
	active    [numResources]paddedCount
	overflows [numResources]atomic.Uint64
}

type paddedCount struct {
	atomic.Uint64
	_ [56]byte
}

// limits is an immutable, precomputed form of Thresholds.
type limits struct {
	t          Thresholds
	max        [numResources]uint64 // max[Retries] is unused with a budget
	budget     bool
	percent    float64 // in [0, 100]
	minRetries uint64
}

var defaultLimits = newLimits(Defaults())

func newLimits(t Thresholds) *limits {
	l := &limits{max: [numResources]uint64{
		Connections:     uint64(t.MaxConnections),
		PendingRequests: uint64(t.MaxPendingRequests),
		Requests:        uint64(t.MaxRequests),
		Retries:         uint64(t.MaxRetries),
	}}
	if b := t.Budget; b != nil {
		bc := *b // t is the caller's; keep our own copy immutable
		if math.IsNaN(bc.Percent) || bc.Percent < 0 {
			bc.Percent = 0
		} else if bc.Percent > 100 {
			bc.Percent = 100
		}
		t.Budget = &bc
		l.budget, l.percent, l.minRetries = true, bc.Percent, uint64(bc.MinConcurrency)
	}
	l.t = t
	return l
}

// New returns a Breaker with thresholds t. m may be nil.
func New(t Thresholds, m Metrics) *Breaker {
	b := &Breaker{metrics: m}
	b.limits.Store(newLimits(t))
	return b
}

// Update replaces the Breaker's thresholds. Counts in flight are kept.
func (b *Breaker) Update(t Thresholds) { b.limits.Store(newLimits(t)) }

// Thresholds returns the Breaker's current thresholds (with the budget
// percentage clamped to [0, 100]).
func (b *Breaker) Thresholds() Thresholds {
	t := b.load().t
	if t.Budget != nil {
		bc := *t.Budget
		t.Budget = &bc
	}
	return t
}

func (b *Breaker) load() *limits {
	if l := b.limits.Load(); l != nil {
		return l
	}
	return defaultLimits
}

// limit returns the current limit of r.
func (b *Breaker) limit(l *limits, r Resource) uint64 {
	if r != Retries || !l.budget {
		return l.max[r]
	}
	// envoy: RetryBudgetImpl::max() in resource_manager_impl.h — the budget
	// is a share of active plus pending requests, with a floor. Multiplying
	// before dividing keeps whole results exact (20% of 5 is 1, not
	// 0.99999…).
	active := b.active[Requests].Load() + b.active[PendingRequests].Load()
	return max(uint64(l.percent*float64(active)/100), l.minRetries)
}

// Acquire takes one unit of r, or reports false (and counts an overflow)
// when r is at its limit. It never lets the count exceed the limit it saw.
func (b *Breaker) Acquire(r Resource) bool {
	c := &b.active[r].Uint64
	for {
		n := c.Load()
		if n >= b.limit(b.load(), r) {
			b.overflows[r].Add(1)
			if b.metrics != nil {
				b.metrics.Overflow(r)
			}
			return false
		}
		if c.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Release gives back one unit of r taken by Acquire.
func (b *Breaker) Release(r Resource) {
	c := &b.active[r].Uint64
	for {
		n := c.Load()
		if n == 0 {
			return
		}
		if c.CompareAndSwap(n, n-1) {
			return
		}
	}
}

// AcquireConnection admits a new upstream connection (max_connections).
// Release it with ReleaseConnection when the connection closes.
func (b *Breaker) AcquireConnection() bool { return b.Acquire(Connections) }

// ReleaseConnection ends a connection admitted by AcquireConnection.
func (b *Breaker) ReleaseConnection() { b.Release(Connections) }

// AcquirePending admits a request that must wait for a connection
// (max_pending_requests; for TCP proxying, a connection). Release it with
// ReleasePending once it gets a connection or gives up.
func (b *Breaker) AcquirePending() bool { return b.Acquire(PendingRequests) }

// ReleasePending ends a wait admitted by AcquirePending.
func (b *Breaker) ReleasePending() { b.Release(PendingRequests) }

// AcquireRequest admits an upstream request (max_requests): every attempt,
// first tries and retries alike. Release it with ReleaseRequest when the
// attempt ends.
func (b *Breaker) AcquireRequest() bool { return b.Acquire(Requests) }

// ReleaseRequest ends a request admitted by AcquireRequest.
func (b *Breaker) ReleaseRequest() { b.Release(Requests) }

// AcquireRetry admits a retry (max_retries, or the retry budget when
// Thresholds.Budget is set: retries in flight stay below
// max(MinConcurrency, Percent% of requests plus pending requests in
// flight)). A refused retry is not attempted (Envoy's upstream_rq_retry_overflow,
// response flag URX). Release it with ReleaseRetry when the retried attempt
// has its answer.
func (b *Breaker) AcquireRetry() bool { return b.Acquire(Retries) }

// ReleaseRetry ends a retry admitted by AcquireRetry.
func (b *Breaker) ReleaseRetry() { b.Release(Retries) }

// Stats returns the state of r. It does not allocate.
func (b *Breaker) Stats(r Resource) Stats {
	return Stats{
		Active:    b.active[r].Load(),
		Limit:     b.limit(b.load(), r),
		Overflows: b.overflows[r].Load(),
	}
}

// Breakers are a cluster's Breakers, one per routing priority. Like a
// Breaker, they outlive config snapshots.
type Breakers struct {
	b [NumPriorities]Breaker
}

// NewBreakers returns Breakers with thresholds p. m may be nil.
func NewBreakers(p Priorities, m Metrics) *Breakers {
	bs := &Breakers{}
	for i := range bs.b {
		bs.b[i].metrics = m
		bs.b[i].Update(p[i])
	}
	return bs
}

// Update replaces the thresholds of every priority.
func (bs *Breakers) Update(p Priorities) {
	for i := range bs.b {
		bs.b[i].Update(p[i])
	}
}

// For returns the Breaker of a route's priority. A priority Envoy does not
// define gets the DEFAULT one.
func (bs *Breakers) For(p corev3.RoutingPriority) *Breaker {
	if p < 0 || p >= NumPriorities {
		p = corev3.RoutingPriority_DEFAULT
	}
	return &bs.b[p]
}
