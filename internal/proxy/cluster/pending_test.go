package cluster

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster/circuit"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
)

// queueEnv is a connQueue over a real Breaker and real metric handles.
type queueEnv struct {
	q        *connQueue
	b        *circuit.Breaker
	st       *metrics.Pending
	overflow atomic.Int64 // the overflow callback runs on the admitting goroutines
}

func newQueueEnv(maxConns, maxPending uint32) *queueEnv {
	t := circuit.Defaults()
	t.MaxConnections, t.MaxPendingRequests = maxConns, maxPending
	return &queueEnv{q: &connQueue{}, b: circuit.New(t, nil), st: metrics.New().Pending("c")}
}

// result is what one admitted request got.
type result struct {
	conn *h1Conn
	err  error
}

// start admits a request to addr on its own goroutine and returns where its
// result will arrive.
func (e *queueEnv) start(ctx context.Context, addr string) chan result {
	ch := make(chan result, 1)
	go func() {
		c, err := e.q.admit(ctx, nil, addr, e.b, e.st, func() { e.overflow.Add(1) })
		if err == nil {
			e.q.admitted(e.b, e.st)
		}
		ch <- result{c, err}
	}()
	return ch
}

// release closes one connection: its slot goes back to the breaker.
func (e *queueEnv) release() {
	e.b.ReleaseConnection()
	e.q.released(e.b)
}

func ready(ch chan result) (result, bool) {
	select {
	case r := <-ch:
		return r, true
	default:
		return result{}, false
	}
}

func TestQueueAdmitsAtOnceWhenNotFull(t *testing.T) {
	e := newQueueEnv(2, 2)
	c, err := e.q.admit(context.Background(), nil, "a:1", e.b, e.st, func() { e.overflow.Add(1) })
	if c != nil || err != nil {
		t.Fatalf("admit = %v, %v; want a slot", c, err)
	}
	if got := e.b.Stats(circuit.PendingRequests).Active; got != 1 {
		t.Errorf("pending while connecting = %d, want 1 (Envoy counts connecting requests)", got)
	}
	e.q.admitted(e.b, e.st)
	if p, cx := e.b.Stats(circuit.PendingRequests).Active, e.b.Stats(circuit.Connections).Active; p != 0 || cx != 1 {
		t.Errorf("pending %d, connections %d; want 0 and 1", p, cx)
	}
	if n := e.overflow.Load(); n != 0 {
		t.Errorf("connection overflows = %d, want 0", n)
	}
}

// TestQueueFIFO: at max_connections requests wait, and each freed slot
// goes to the oldest.
func TestQueueFIFO(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newQueueEnv(1, 10)
		e.b.AcquireConnection() // the one connection is busy
		var chans []chan result
		for i := range 3 {
			chans = append(chans, e.start(context.Background(), "a:1"))
			synctest.Wait() // queued in this order
			if n := e.q.n.Load(); n != int32(i+1) {
				t.Fatalf("%d waiting, want %d", n, i+1)
			}
		}
		if got := e.b.Stats(circuit.PendingRequests).Active; got != 3 {
			t.Errorf("pending = %d, want 3", got)
		}
		for i := range chans {
			e.release()
			synctest.Wait()
			for j, ch := range chans[i:] {
				r, ok := ready(ch)
				if j == 0 && (!ok || r.err != nil || r.conn != nil) {
					t.Fatalf("waiter %d after release %d: %v %v, want a slot", i, i, ok, r.err)
				}
				if j > 0 && ok {
					t.Fatalf("waiter %d served before waiter %d", i+j, i)
				}
			}
		}
		if n := e.overflow.Load(); n != 3 {
			t.Errorf("connection overflows = %d, want 3 (one per waiting request)", n)
		}
		if got := e.b.Stats(circuit.PendingRequests).Active; got != 0 {
			t.Errorf("pending = %d after all were served, want 0", got)
		}
	})
}

func TestQueueOverflow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newQueueEnv(1, 2)
		e.b.AcquireConnection()
		a, b := e.start(context.Background(), "a:1"), e.start(context.Background(), "a:1")
		synctest.Wait()
		_, err := e.q.admit(context.Background(), nil, "a:1", e.b, e.st, func() {})
		if !errors.Is(err, ErrPendingOverflow) || !errors.Is(err, ErrConnectionOverflow) {
			t.Fatalf("third request: %v, want ErrPendingOverflow (an ErrConnectionOverflow)", err)
		}
		if got := e.b.Stats(circuit.PendingRequests).Overflows; got != 1 {
			t.Errorf("pending overflows = %d, want 1", got)
		}
		e.release()
		synctest.Wait()
		e.b.ReleaseConnection() // the first waiter's connection closes
		e.q.released(e.b)
		synctest.Wait()
		for _, ch := range []chan result{a, b} {
			if r, ok := ready(ch); !ok || r.err != nil {
				t.Fatalf("waiter: %v %v", ok, r.err)
			}
		}
	})
}

// errRouteTimeout stands for the router's timeout cause.
var errRouteTimeout = errors.New("route timeout")

// TestQueueTimeout: a waiter whose context ends leaves the queue with the
// context's cause, still matching ErrConnectionOverflow so that the host
// is not blamed; the others keep their places.
func TestQueueTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newQueueEnv(1, 10)
		e.b.AcquireConnection()
		ctx, cancel := context.WithTimeoutCause(context.Background(), time.Second, errRouteTimeout)
		defer cancel()
		first := e.start(ctx, "a:1")
		synctest.Wait()
		second := e.start(context.Background(), "a:1")
		time.Sleep(time.Second)
		synctest.Wait()
		r, ok := ready(first)
		if !ok || !errors.Is(r.err, errRouteTimeout) || !errors.Is(r.err, ErrConnectionOverflow) {
			t.Fatalf("timed-out waiter: %v %v, want the route timeout", ok, r.err)
		}
		if n := e.q.n.Load(); n != 1 {
			t.Errorf("%d waiting, want 1", n)
		}
		if got := e.b.Stats(circuit.PendingRequests).Active; got != 1 {
			t.Errorf("pending = %d, want 1", got)
		}
		e.release()
		synctest.Wait()
		if r, ok := ready(second); !ok || r.err != nil {
			t.Fatalf("second waiter: %v %v", ok, r.err)
		}
	})
}

// TestQueueRaisedLimit: raising max_connections admits waiters at once.
func TestQueueRaisedLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newQueueEnv(1, 10)
		e.b.AcquireConnection()
		a, b := e.start(context.Background(), "a:1"), e.start(context.Background(), "b:1")
		synctest.Wait()
		th := e.b.Thresholds()
		th.MaxConnections = 3
		e.b.Update(th)
		e.q.released(e.b)
		synctest.Wait()
		for _, ch := range []chan result{a, b} {
			if r, ok := ready(ch); !ok || r.err != nil {
				t.Fatalf("waiter: %v %v", ok, r.err)
			}
		}
	})
}

// TestQueueHandoff: an idle connection goes to the oldest request for its
// host; while the oldest request wants another host the connection is
// closed instead, or handed past it at most maxSkips times.
func TestQueueHandoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newQueueEnv(1, 100)
		e.b.AcquireConnection()
		if handed, closeIt := e.q.offer("a:1", &h1Conn{}); handed || closeIt {
			t.Fatal("offer with nobody waiting must keep the connection idle")
		}
		head := e.start(context.Background(), "b:1")
		synctest.Wait()
		if handed, closeIt := e.q.offer("a:1", &h1Conn{}); handed || !closeIt {
			t.Fatal("only a request for another host waits: the connection must be closed for it")
		}
		var forA []chan result
		for range maxSkips + 1 {
			forA = append(forA, e.start(context.Background(), "a:1"))
			synctest.Wait()
		}
		var got []bool
		for range maxSkips + 1 {
			c := &h1Conn{}
			handed, closeIt := e.q.offer("a:1", c)
			got = append(got, handed)
			if !handed && !closeIt {
				t.Fatal("neither handed nor closed")
			}
		}
		want := []bool{true, true, true, true, false}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("handed over (-want +got):\n%s", diff)
		}
		synctest.Wait()
		for i, ch := range forA[:maxSkips] {
			if r, ok := ready(ch); !ok || r.conn == nil {
				t.Errorf("request %d for a:1 did not get the connection", i)
			}
		}
		if _, ok := ready(head); ok {
			t.Fatal("the request for b:1 was served without a slot")
		}
		e.release() // the connection closed for it
		synctest.Wait()
		if r, ok := ready(head); !ok || r.conn != nil || r.err != nil {
			t.Fatalf("request for b:1: %v %+v, want a slot", ok, r)
		}
		e.release()
		synctest.Wait()
		if r, ok := ready(forA[maxSkips]); !ok || r.conn != nil || r.err != nil {
			t.Fatalf("last request for a:1: %v %+v, want a slot", ok, r)
		}
	})
}

// BenchmarkQueueAdmit measures a request that needs a new connection when
// the cluster is under its limits: admit, admitted and the connection's
// release. It must not allocate.
func BenchmarkQueueAdmit(b *testing.B) {
	e := newQueueEnv(1024, 1024)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.q.admit(ctx, nil, "a:1", e.b, e.st, func() {}); err != nil {
			b.Fatal(err)
		}
		e.q.admitted(e.b, e.st)
		e.release()
	}
}

// TestQueueConcurrent hammers a queue with requests that hold their
// connection briefly or give up while waiting, and checks that nothing
// leaks: every slot and pending unit comes back and the queue ends empty.
func TestQueueConcurrent(t *testing.T) {
	e := newQueueEnv(3, 1000)
	var wg sync.WaitGroup
	for g := range 40 {
		wg.Go(func() {
			for i := range 200 {
				ctx, cancel := context.WithCancel(context.Background())
				if (g+i)%3 == 0 {
					cancel() // gives up at once, possibly while being served
				}
				c, err := e.q.admit(ctx, nil, "a:1", e.b, e.st, func() {})
				cancel()
				if err != nil {
					continue
				}
				e.q.admitted(e.b, e.st)
				if c != nil {
					t.Error("a connection was handed over with no pool")
				}
				runtime.Gosched()
				e.release()
			}
		})
	}
	wg.Wait()
	for _, r := range []circuit.Resource{circuit.Connections, circuit.PendingRequests} {
		if got := e.b.Stats(r).Active; got != 0 {
			t.Errorf("%v active = %d after the run, want 0", r, got)
		}
	}
	if n := e.q.n.Load(); n != 0 || e.q.head != nil {
		t.Errorf("%d waiters left", n)
	}
}
