package discovery

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

// recordSink remembers every view it was asked to apply.
type recordSink struct {
	mu    sync.Mutex
	views []Snapshot
	fail  int // fail this many calls first
}

func (r *recordSink) Sync(_ context.Context, s Snapshot) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		return context.DeadlineExceeded
	}
	r.views = append(r.views, s)
	return nil
}

func (r *recordSink) got() []Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Snapshot(nil), r.views...)
}

// chanSource sends what the test puts on its channel.
type chanSource struct{ c chan Snapshot }

func (chanSource) Name() string { return "test" }
func (s chanSource) Run(ctx context.Context, out chan<- Snapshot) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case v := <-s.c:
			out <- v
		}
	}
}

func dp(name, addr string) *v1alpha1.Dataplane {
	return &v1alpha1.Dataplane{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.DataplaneSpec{Address: addr}}
}

func TestAggregatorCoalescesAndDropsNoOps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		sink := &recordSink{}
		src := chanSource{make(chan Snapshot)}
		done := make(chan struct{})
		go func() { (&Aggregator{Sink: sink}).Run(ctx, src); close(done) }()

		// A burst of three views: only the newest is applied.
		src.c <- Snapshot{Source: "test", Dataplanes: []*v1alpha1.Dataplane{dp("a", "10.0.0.1")}}
		src.c <- Snapshot{Source: "test", Dataplanes: []*v1alpha1.Dataplane{dp("a", "10.0.0.2")}}
		src.c <- Snapshot{Source: "test", Dataplanes: []*v1alpha1.Dataplane{dp("a", "10.0.0.3"), dp("b", "10.0.0.4")}}
		time.Sleep(time.Second)
		synctest.Wait()
		if got := sink.got(); len(got) != 1 || len(got[0].Dataplanes) != 2 {
			t.Fatalf("after a burst: %d applications, want 1 with 2 dataplanes", len(got))
		}
		// The same view again is a no-op.
		src.c <- Snapshot{Source: "test", Dataplanes: []*v1alpha1.Dataplane{dp("b", "10.0.0.4"), dp("a", "10.0.0.3")}}
		time.Sleep(time.Second)
		synctest.Wait()
		if got := sink.got(); len(got) != 1 {
			t.Fatalf("an unchanged view was applied again: %d applications", len(got))
		}
		// A change is applied.
		src.c <- Snapshot{Source: "test"}
		time.Sleep(time.Second)
		synctest.Wait()
		if got := sink.got(); len(got) != 2 || len(got[1].Dataplanes) != 0 {
			t.Fatalf("got %d applications, want 2, the last empty", len(got))
		}
		cancel()
		<-done
	})
}

func TestAggregatorRetriesAFailedSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		sink := &recordSink{fail: 2}
		src := chanSource{make(chan Snapshot)}
		done := make(chan struct{})
		go func() { (&Aggregator{Sink: sink, Retry: time.Second}).Run(ctx, src); close(done) }()
		src.c <- Snapshot{Source: "test", Dataplanes: []*v1alpha1.Dataplane{dp("a", "10.0.0.1")}}
		time.Sleep(1500 * time.Millisecond) // the first try and one retry fail
		synctest.Wait()
		if got := sink.got(); len(got) != 0 {
			t.Fatalf("applied %d times while the sink was failing", len(got))
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if got := sink.got(); len(got) != 1 {
			t.Fatalf("applied %d times after the sink recovered, want 1", len(got))
		}
		cancel()
		<-done
	})
}
