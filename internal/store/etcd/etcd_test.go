package etcd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/trellis-mesh/trellis/internal/store"
	"github.com/trellis-mesh/trellis/internal/store/etcd/etcdtest"
	"github.com/trellis-mesh/trellis/internal/store/storetest"
)

func client(t testing.TB, endpoints []string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestConformance(t *testing.T) {
	c := client(t, etcdtest.Start(t))
	var n atomic.Int64
	newStore := func(t *testing.T, prefix string) *Store {
		s := New(t.Context(), c, prefix)
		t.Cleanup(func() { s.Close() })
		return s
	}
	// Subtests share one server, each under its own prefix.
	storetest.Run(t, func(t *testing.T) store.Store {
		return newStore(t, fmt.Sprintf("/test%d/", n.Add(1)))
	}, storetest.Options{
		Reopen: func(t *testing.T, s store.Store) store.Store {
			prefix := strings.TrimSuffix(s.(*Store).res, "resources/")
			s.Close()
			return newStore(t, prefix)
		},
		Compact: func(t *testing.T, _ store.Store, rev int64) {
			if _, err := c.Compact(t.Context(), rev, clientv3.WithCompactPhysical()); err != nil {
				t.Fatal(err)
			}
		},
	})
}

// TestForeignKeys: keys under the prefix that are not resources, and keys
// outside it, are neither listed nor watched.
func TestForeignKeys(t *testing.T) {
	c := client(t, etcdtest.Start(t))
	s := New(t.Context(), c, "/trellis")
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	from, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := s.Watch(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"/trellis/resources/odd", "/trellis/resources/a/b/c/d", "/trellis/other", "/trellisx/resources/Mesh//m"} {
		if _, err := c.Put(ctx, k, "{}"); err != nil {
			t.Fatal(err)
		}
	}
	r, err := s.Create(ctx, store.Key{Kind: "Mesh", Name: "m"}, []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	if raw, err := c.Get(ctx, "/trellis/resources/Mesh//m"); err != nil || len(raw.Kvs) != 1 {
		t.Fatalf("resource not at the documented key: %v %v", raw, err)
	}
	select {
	case ev := <-ch:
		if ev.Revision != r.Revision {
			t.Fatalf("first event at %d (%v), want only the resource at %d", ev.Revision, ev.Resource.Key, r.Revision)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no event")
	}
	items, _, err := s.List(ctx, "")
	if err != nil || len(items) != 1 {
		t.Fatalf("List = %v, %v; want only the resource", items, err)
	}
}

func TestElect(t *testing.T) {
	eps := etcdtest.Start(t)
	c1, c2 := client(t, eps), client(t, eps)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	a, err := Elect(ctx, c1, "/trellis", "a")
	if err != nil {
		t.Fatal(err)
	}
	if !a.IsLeader() {
		t.Fatal("a elected but not IsLeader")
	}
	type result struct {
		l   *Leader
		err error
	}
	bc := make(chan result, 1)
	go func() {
		l, err := Elect(ctx, c2, "/trellis", "b")
		bc <- result{l, err}
	}()
	// b must wait while a leads: observe that b's campaign key exists and
	// b has not returned.
	waitCampaigners(t, c1, 2)
	select {
	case r := <-bc:
		t.Fatalf("b elected while a leads: %v", r.err)
	default:
	}
	if err := a.Resign(); err != nil {
		t.Fatal(err)
	}
	if a.IsLeader() {
		t.Error("a IsLeader after Resign")
	}
	select {
	case <-a.Done():
	default:
		t.Error("a.Done not closed after Resign")
	}
	r := <-bc
	if r.err != nil {
		t.Fatalf("b: %v", r.err)
	}
	if !r.l.IsLeader() {
		t.Fatal("b elected but not IsLeader")
	}
	if err := a.Resign(); err != nil {
		t.Errorf("second Resign: %v", err)
	}

	// A campaign gives up when its ctx ends.
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	if _, err := Elect(short, c1, "/trellis", "c"); err == nil {
		t.Fatal("Elect succeeded while b leads")
	}

	// Leadership ends when the leader's client goes away.
	c2.Close()
	select {
	case <-r.l.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("b.Done not closed after its client closed")
	}
	if r.l.IsLeader() {
		t.Error("b IsLeader after its client closed")
	}
}

// waitCampaigners polls until n campaign keys exist under /trellis/leader/.
func waitCampaigners(t *testing.T, c *clientv3.Client, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := c.Get(t.Context(), "/trellis/leader/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if resp.Count == int64(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d campaigners, want %d", resp.Count, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSlowWatcherDropped(t *testing.T) {
	c := client(t, etcdtest.Start(t))
	s := New(t.Context(), c, "/trellis")
	t.Cleanup(func() { s.Close() })
	s.queue = 4
	ctx := t.Context()
	from, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slow, err := s.Watch(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	k := store.Key{Kind: "Service", Namespace: "default", Name: "web"}
	var last int64
	for i := range 20 {
		r, err := s.Update(ctx, k, fmt.Append(nil, i), 0)
		if err != nil {
			t.Fatal(err)
		}
		last = r.Revision
	}
	got, lastSeen := 0, from
	deadline := time.After(20 * time.Second)
	for open := true; open; {
		select {
		case ev, ok := <-slow:
			if open = ok; ok {
				got++
				lastSeen = ev.Revision
			}
		case <-deadline:
			t.Fatal("slow watcher's channel not closed")
		}
	}
	if got >= 20 || ctx.Err() != nil {
		t.Fatalf("slow watcher received %d of 20 events (ctx %v), want it dropped with ctx live", got, ctx.Err())
	}
	// Resume from the last event received. etcd replays history in one
	// batch, larger than the lowered queue.
	s.queue = watchQueue
	ch, err := s.Watch(ctx, lastSeen)
	if err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("resumed watch closed")
			}
			if ev.Revision <= lastSeen {
				t.Fatalf("resumed watch delivered %d after %d", ev.Revision, lastSeen)
			}
			if ev.Revision == last {
				return
			}
		case <-time.After(20 * time.Second):
			t.Fatal("resumed watch stalled")
		}
	}
}

// TestReplicasOnCluster: two stores (two control-plane replicas) on
// different members of a three-member cluster see each other's writes and
// conflict on the same revision.
func TestReplicasOnCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three etcd members")
	}
	eps := etcdtest.StartCluster(t, 3)
	a := New(t.Context(), client(t, eps[:1]), "/trellis")
	b := New(t.Context(), client(t, eps[2:]), "/trellis")
	t.Cleanup(func() { a.Close(); b.Close() })
	ctx := t.Context()
	from, err := b.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := b.Watch(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	k := store.Key{Kind: "Service", Namespace: "default", Name: "web"}
	r, err := a.Create(ctx, k, []byte(`{"v":1}`))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-ch:
		if ev.Revision != r.Revision || ev.Resource.Key != k {
			t.Fatalf("replica b saw %v at %d, want %v at %d", ev.Resource.Key, ev.Revision, k, r.Revision)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("replica b saw no event")
	}
	if _, err := b.Update(ctx, k, []byte(`{"v":2}`), r.Revision); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Update(ctx, k, []byte(`{"v":3}`), r.Revision); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale update through replica a: %v, want ErrConflict", err)
	}
}
