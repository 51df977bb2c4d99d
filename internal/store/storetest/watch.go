package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/internal/store"
)

// waitFor bounds every wait on a watch channel.
const waitFor = 20 * time.Second

// next receives one event or fails.
func next(t *testing.T, ch <-chan store.Event) store.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed early")
		}
		return ev
	case <-time.After(waitFor):
		t.Fatalf("no event within %v", waitFor)
	}
	panic("unreachable")
}

// collect receives n events and checks that revisions strictly increase.
func collect(t *testing.T, ch <-chan store.Event, n int) []store.Event {
	t.Helper()
	evs := make([]store.Event, 0, n)
	for range n {
		ev := next(t, ch)
		if len(evs) > 0 && ev.Revision <= evs[len(evs)-1].Revision {
			t.Fatalf("event revision %d after %d", ev.Revision, evs[len(evs)-1].Revision)
		}
		evs = append(evs, ev)
	}
	return evs
}

// waitClosed drains ch until it is closed.
func waitClosed(t *testing.T, ch <-chan store.Event) {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("watch channel not closed within %v", waitFor)
		}
	}
}

// expectNext writes a sentinel resource and fails unless it is the next
// event on ch: nothing extra was delivered.
func expectNext(t *testing.T, s store.Store, ch <-chan store.Event) {
	t.Helper()
	k := store.Key{Kind: "Sentinel", Name: fmt.Sprint(time.Now().UnixNano())}
	r := mustUpdate(t, s, k, doc("sentinel"), 0)
	ev := next(t, ch)
	if ev.Resource.Key != k || ev.Revision != r.Revision {
		t.Fatalf("got event %v %v rev %d, want only the sentinel put at %d", ev.Type, ev.Resource.Key, ev.Revision, r.Revision)
	}
}

type write struct {
	typ   store.EventType
	key   store.Key
	value []byte
	rev   int64 // the event's revision
	prev  int64 // for deletes, the resource's last revision
}

// writeScript makes puts and deletes and returns what Watch must report.
func writeScript(t *testing.T, s store.Store) []write {
	ctx := t.Context()
	var ws []write
	put := func(k store.Key, v []byte) {
		r := mustUpdate(t, s, k, v, 0)
		ws = append(ws, write{typ: store.EventPut, key: k, value: v, rev: r.Revision})
	}
	put(web, doc("1"))
	put(api, doc("1"))
	put(web, doc("2"))
	put(mesh, doc("m"))
	d, err := s.Delete(ctx, api, 0)
	if err != nil {
		t.Fatal(err)
	}
	ws = append(ws, write{typ: store.EventDelete, key: api, value: doc("1"), rev: mustRevision(t, s), prev: d.Revision})
	put(api, doc("3"))
	return ws
}

func checkEvents(t *testing.T, got []store.Event, want []write) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	for i, w := range want {
		ev := got[i]
		wantResRev := w.rev
		if w.typ == store.EventDelete {
			wantResRev = w.prev
		}
		if ev.Type != w.typ || ev.Resource.Key != w.key || string(ev.Resource.Value) != string(w.value) ||
			ev.Revision != w.rev || ev.Resource.Revision != wantResRev {
			t.Errorf("event %d = %v %v %s rev %d (resource rev %d), want %v %v %s rev %d (resource rev %d)",
				i, ev.Type, ev.Resource.Key, ev.Resource.Value, ev.Revision, ev.Resource.Revision,
				w.typ, w.key, w.value, w.rev, wantResRev)
		}
	}
}

func testWatchFromZero(t *testing.T, s store.Store) {
	want := writeScript(t, s)
	ch, err := s.Watch(t.Context(), 0)
	if err != nil {
		t.Fatalf("Watch(0): %v", err)
	}
	checkEvents(t, collect(t, ch, len(want)), want)
	expectNext(t, s, ch)
}

func testWatchFromMiddle(t *testing.T, s store.Store) {
	want := writeScript(t, s)
	ch, err := s.Watch(t.Context(), want[2].rev)
	if err != nil {
		t.Fatalf("Watch(%d): %v", want[2].rev, err)
	}
	checkEvents(t, collect(t, ch, len(want)-3), want[3:])
	expectNext(t, s, ch)
}

func testWatchLive(t *testing.T, s store.Store) {
	mustCreate(t, s, mesh, doc("before"))
	ch, err := s.Watch(t.Context(), mustRevision(t, s))
	if err != nil {
		t.Fatal(err)
	}
	want := writeScript(t, s)
	checkEvents(t, collect(t, ch, len(want)), want)
}

func testWatchFuture(t *testing.T, s store.Store) {
	rev := mustRevision(t, s)
	ch, err := s.Watch(t.Context(), rev+2)
	if err != nil {
		t.Fatalf("Watch(current+2): %v", err)
	}
	mustUpdate(t, s, web, doc("1"), 0)
	mustUpdate(t, s, web, doc("2"), 0)
	r := mustUpdate(t, s, web, doc("3"), 0)
	for {
		ev := next(t, ch)
		if ev.Revision <= rev+2 {
			t.Fatalf("Watch(%d) delivered revision %d", rev+2, ev.Revision)
		}
		if ev.Revision == r.Revision {
			return
		}
	}
}

func testWatchCancel(t *testing.T, s store.Store) {
	ctx, cancel := watchCtx(t)
	ch, err := s.Watch(ctx, mustRevision(t, s))
	if err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, s, web, doc("1"), 0)
	next(t, ch)
	cancel()
	waitClosed(t, ch)
	mustUpdate(t, s, web, doc("2"), 0) // writers are unaffected by the dead watch
}

func testWatchClosedByClose(t *testing.T, s store.Store) {
	ch, err := s.Watch(t.Context(), mustRevision(t, s))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	waitClosed(t, ch)
}

func testConcurrentCAS(t *testing.T, s store.Store) {
	const writers, increments = 8, 25
	ctx := t.Context()
	counter := store.Key{Kind: "Counter", Name: "c"}
	start := mustCreate(t, s, counter, []byte("0"))
	ch, err := s.Watch(ctx, start.Revision)
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		conflicts int
		errs      []error
	)
	for range writers {
		wg.Go(func() {
			for range increments {
				for {
					cur, err := s.Get(ctx, counter)
					if err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
						return
					}
					var n int
					fmt.Sscan(string(cur.Value), &n)
					_, err = s.Update(ctx, counter, fmt.Append(nil, n+1), cur.Revision)
					if errors.Is(err, store.ErrConflict) {
						mu.Lock()
						conflicts++
						mu.Unlock()
						continue
					}
					if err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
						return
					}
					break
				}
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("writers failed: %v", errs)
	}
	got, err := s.Get(ctx, counter)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprint(writers * increments); string(got.Value) != want {
		t.Fatalf("counter = %s, want %s (lost updates)", got.Value, want)
	}
	t.Logf("%d conflicts retried", conflicts)
	evs := collect(t, ch, writers*increments)
	for i, ev := range evs {
		if want := fmt.Sprint(i + 1); string(ev.Resource.Value) != want {
			t.Fatalf("event %d value %s, want %s", i, ev.Resource.Value, want)
		}
	}
}

func testConcurrentWritersWatched(t *testing.T, s store.Store) {
	const writers, writes = 8, 30
	ctx := t.Context()
	from := mustRevision(t, s)
	ch, err := s.Watch(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errc := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			k := store.Key{Kind: "Service", Namespace: "default", Name: fmt.Sprintf("svc-%d", w)}
			for i := range writes {
				var err error
				if i == writes-1 {
					_, err = s.Delete(ctx, k, 0)
				} else {
					_, err = s.Update(ctx, k, fmt.Appendf(nil, `{"w":%d,"i":%d}`, w, i), 0)
				}
				if err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatalf("writer: %v", err)
	}
	evs := collect(t, ch, writers*writes)
	seen := map[store.Key]int{}
	for _, ev := range evs {
		i := seen[ev.Resource.Key]
		seen[ev.Resource.Key]++
		if i == writes-1 {
			if ev.Type != store.EventDelete || string(ev.Resource.Value) != fmt.Sprintf(`{"w":%s,"i":%d}`, ev.Resource.Name[4:], writes-2) {
				t.Errorf("last event of %v = %v %s, want the delete of the last value", ev.Resource.Key, ev.Type, ev.Resource.Value)
			}
			continue
		}
		if want := fmt.Sprintf(`{"w":%s,"i":%d}`, ev.Resource.Name[4:], i); ev.Type != store.EventPut || string(ev.Resource.Value) != want {
			t.Errorf("event %d of %v = %v %s, want put %s (per-key order)", i, ev.Resource.Key, ev.Type, ev.Resource.Value, want)
		}
	}
	if len(seen) != writers {
		t.Errorf("events for %d keys, want %d", len(seen), writers)
	}
	if rev := mustRevision(t, s); evs[len(evs)-1].Revision != rev {
		t.Errorf("last event revision %d, store revision %d", evs[len(evs)-1].Revision, rev)
	}
}

func testReopen(t *testing.T, s store.Store, reopen func(*testing.T, store.Store) store.Store) {
	want := writeScript(t, s)
	before := mustRevision(t, s)
	s = reopen(t, s)
	if rev := mustRevision(t, s); rev != before {
		t.Fatalf("Revision after reopen %d, want %d", rev, before)
	}
	got, err := s.Get(t.Context(), web)
	if err != nil {
		t.Fatalf("Get after reopen: %v", err)
	}
	checkResource(t, "Get after reopen", got, web, doc("2"), want[2].rev)
	if _, err := s.Get(t.Context(), api); err != nil {
		t.Fatalf("Get after reopen: %v", err)
	}
	ch, err := s.Watch(t.Context(), 0)
	if err != nil {
		t.Fatalf("Watch(0) after reopen: %v", err)
	}
	checkEvents(t, collect(t, ch, len(want)), want)
	r := mustUpdate(t, s, web, doc("after"), want[2].rev)
	if r.Revision <= before {
		t.Errorf("revision after reopen %d, want > %d", r.Revision, before)
	}
	if ev := next(t, ch); ev.Revision != r.Revision {
		t.Errorf("live event after reopen at %d, want %d", ev.Revision, r.Revision)
	}
}

func testCompaction(t *testing.T, s store.Store, compact func(*testing.T, store.Store, int64)) {
	ctx := t.Context()
	want := writeScript(t, s)
	at := want[4].rev
	compact(t, s, at)
	for _, from := range []int64{0, want[0].rev, at - 2} {
		if _, err := s.Watch(ctx, from); !errors.Is(err, store.ErrCompacted) {
			t.Errorf("Watch(%d) after compacting to %d: %v, want ErrCompacted", from, at, err)
		}
	}
	// Recovery: List, then Watch from the List revision.
	items, rev, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 {
		t.Errorf("List after compaction: %d items, want 3", len(items))
	}
	ch, err := s.Watch(ctx, rev)
	if err != nil {
		t.Fatalf("Watch(List revision %d): %v", rev, err)
	}
	r := mustUpdate(t, s, web, doc("after"), 0)
	if ev := next(t, ch); ev.Revision != r.Revision || ev.Resource.Key != web {
		t.Errorf("event after recovery: %v rev %d, want %v rev %d", ev.Resource.Key, ev.Revision, web, r.Revision)
	}
	// History after the compaction point is kept.
	ch, err = s.Watch(ctx, at)
	if err != nil {
		t.Fatalf("Watch(%d) just after the compaction point: %v", at, err)
	}
	checkEvents(t, collect(t, ch, 1), want[5:])
}
