package cluster

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster/circuit"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
)

// ErrPendingOverflow is returned when a request finds no idle upstream
// connection and the cluster's queue of pending requests is full
// (circuit_breakers max_pending_requests; Envoy's upstream_rq_pending_overflow,
// flag UO). errors.Is(ErrPendingOverflow, ErrConnectionOverflow) is true, so
// callers treat both as a circuit-breaker refusal: 503, not retried, not
// held against the host.
var ErrPendingOverflow error = &pendingError{msg: "upstream pending request queue (circuit_breakers max_pending_requests) is full"}

// pendingError is a request that never got an upstream connection: the
// queue was full, or its context ended while it waited. Either way the
// host never saw it, so it Is ErrConnectionOverflow (outlier detection and
// retries leave it alone) and unwraps to the context's cause (a route
// timeout still answers 504).
type pendingError struct {
	msg   string
	cause error
}

func (e *pendingError) Error() string {
	if e.cause != nil {
		return "gave up waiting for an upstream connection: " + e.cause.Error()
	}
	return e.msg
}
func (e *pendingError) Unwrap() error        { return e.cause }
func (e *pendingError) Is(target error) bool { return target == ErrConnectionOverflow }

// maxSkips bounds how often a returned connection may go to a later
// request for its host while the oldest waiting request wants another
// host; after that, the connection is closed so the oldest request can
// connect. It keeps connection reuse (Envoy's per-host pools) without
// starving a host that has no connection.
const maxSkips = 4

// connQueue is a cluster's FIFO of requests waiting for an HTTP/1.1
// upstream connection because the cluster is at circuit_breakers
// max_connections. It is long-lived (one per cluster name, kept by the
// Manager beside the Breakers), so a connection closing in an older pool
// still wakes requests queued in the current one.
//
// A waiter is woken by a connection slot (a connection closed, or
// max_connections was raised: it then holds one Connections unit and
// dials) or by an idle connection to its host handed over by the pool.
// Methods are safe for concurrent use; when nobody waits, release paths
// cost one atomic load.
type connQueue struct {
	n          atomic.Int32 // waiters queued; read without mu
	mu         sync.Mutex
	head, tail *waiter
}

type waiter struct {
	addr       string
	ch         chan *h1Conn // buffered 1; nil conn: a connection slot
	next, prev *waiter
	queued     bool
	skipped    int
}

// admit lets a request to addr that found no idle connection proceed: it
// takes a pending-request unit (or fails with ErrPendingOverflow), then a
// connection slot, waiting in FIFO order while the cluster is at
// max_connections. It returns (nil, nil) when the caller holds a slot and
// must connect, or a connection to addr handed over by the pool. On
// success the pending unit is still held (Envoy counts a request as pending
// until it has a connection, connecting included): call admitted once the
// connection is up or failed. On error nothing is held.
func (q *connQueue) admit(ctx context.Context, t *h1Transport, addr string, b *circuit.Breaker, st *metrics.Pending, overflow func()) (*h1Conn, error) {
	if !b.AcquirePending() {
		st.Overflow.Inc()
		return nil, ErrPendingOverflow
	}
	st.Active.Inc()
	st.Total.Inc()
	if q.n.Load() == 0 && b.AcquireConnection() {
		return nil, nil
	}
	overflow() // Envoy's upstream_cx_overflow: the request must wait
	c, err := q.wait(ctx, t, addr, b)
	if err != nil {
		q.admitted(b, st)
		return nil, err
	}
	return c, nil
}

// admitted ends the pending state of a request admit let through.
func (q *connQueue) admitted(b *circuit.Breaker, st *metrics.Pending) {
	b.ReleasePending()
	st.Active.Dec()
}

// wait queues a request until it gets a slot or a connection, or ctx ends.
// t takes back a connection handed over as ctx ended.
func (q *connQueue) wait(ctx context.Context, t *h1Transport, addr string, b *circuit.Breaker) (*h1Conn, error) {
	w := &waiter{addr: addr, ch: make(chan *h1Conn, 1)}
	q.mu.Lock()
	q.push(w)
	// A slot freed between the caller's try and the push found nobody to
	// wake; the head of the queue tries again now that it is visible.
	if q.head == w && b.AcquireConnection() {
		q.remove(w)
		q.mu.Unlock()
		return nil, nil
	}
	q.mu.Unlock()
	select {
	case c := <-w.ch:
		return c, nil
	case <-ctx.Done():
	}
	q.mu.Lock()
	granted := !w.queued
	if !granted {
		q.remove(w)
	}
	q.mu.Unlock()
	if granted {
		// Served as ctx ended: hand what we got to the next in line.
		if c := <-w.ch; c != nil {
			t.put(addr, c)
		} else {
			b.ReleaseConnection()
			q.released(b)
		}
	}
	return nil, &pendingError{cause: context.Cause(ctx)}
}

// released gives connection slots to waiters, oldest first, while the
// breaker admits connections. Call it after a Connections unit was
// released or max_connections raised.
func (q *connQueue) released(b *circuit.Breaker) {
	if q == nil || q.n.Load() == 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.head != nil && b.AcquireConnection() {
		w := q.head
		q.remove(w)
		w.ch <- nil
	}
}

// offer hands an idle connection to addr to the oldest request waiting for
// that host. It reports false when nobody waits for addr; close then tells
// the pool to close the connection instead of keeping it, because an older
// request for another host needs the slot.
func (q *connQueue) offer(addr string, c *h1Conn) (handed, close bool) {
	if q == nil || q.n.Load() == 0 {
		return false, false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	h := q.head
	if h == nil {
		return false, false
	}
	for w := h; w != nil; w = w.next {
		if w.addr != addr {
			continue
		}
		if w != h {
			if h.skipped >= maxSkips {
				break
			}
			h.skipped++
		}
		q.remove(w)
		w.ch <- c
		return true, false
	}
	return false, true
}

func (q *connQueue) push(w *waiter) {
	w.queued = true
	w.prev = q.tail
	if q.tail != nil {
		q.tail.next = w
	} else {
		q.head = w
	}
	q.tail = w
	q.n.Add(1)
}

func (q *connQueue) remove(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		q.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		q.tail = w.prev
	}
	w.next, w.prev, w.queued = nil, nil, false
	q.n.Add(-1)
}
