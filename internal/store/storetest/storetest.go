// Package storetest is the conformance suite every store.Store backend
// passes: CRUD semantics and errors, revisions, List, Watch (history, live,
// compaction, cancellation), concurrent writers and persistence.
//
// A backend's test calls Run with a function that opens an empty store for
// one subtest (closing it in t.Cleanup). Subtests run one after another;
// the compaction subtest runs last, so a backend whose stores share one
// server-wide history (etcd) can hand out stores under distinct prefixes of
// one server.
package storetest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/trellis-mesh/trellis/internal/store"
)

// Options are the optional hooks of Run. A nil hook skips its subtests.
type Options struct {
	// Reopen closes s and opens the same data again (a restart).
	Reopen func(t *testing.T, s store.Store) store.Store
	// Compact drops the watch history of s before rev, as etcd's Compact.
	Compact func(t *testing.T, s store.Store, rev int64)
}

// Run runs the conformance suite against stores made by open.
func Run(t *testing.T, open func(t *testing.T) store.Store, opts Options) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CreateGet", testCreateGet},
		{"Update", testUpdate},
		{"Delete", testDelete},
		{"InvalidKey", testInvalidKey},
		{"RevisionsIncrease", testRevisionsIncrease},
		{"List", testList},
		{"WatchFromZero", testWatchFromZero},
		{"WatchFromMiddle", testWatchFromMiddle},
		{"WatchLive", testWatchLive},
		{"WatchFuture", testWatchFuture},
		{"WatchCancel", testWatchCancel},
		{"WatchClosedByClose", testWatchClosedByClose},
		{"ConcurrentCAS", testConcurrentCAS},
		{"ConcurrentWritersWatched", testConcurrentWritersWatched},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
	t.Run("Reopen", func(t *testing.T) {
		if opts.Reopen == nil {
			t.Skip("no Reopen hook")
		}
		testReopen(t, open(t), opts.Reopen)
	})
	t.Run("Compaction", func(t *testing.T) {
		if opts.Compact == nil {
			t.Skip("no Compact hook")
		}
		testCompaction(t, open(t), opts.Compact)
	})
}

var (
	web     = store.Key{Kind: "Service", Namespace: "default", Name: "web"}
	api     = store.Key{Kind: "Service", Namespace: "default", Name: "api"}
	webProd = store.Key{Kind: "Service", Namespace: "prod", Name: "web"}
	mesh    = store.Key{Kind: "Mesh", Name: "default"}
)

func doc(s string) []byte { return []byte(`{"v":"` + s + `"}`) }

func mustCreate(t *testing.T, s store.Store, k store.Key, v []byte) store.Resource {
	t.Helper()
	r, err := s.Create(t.Context(), k, v)
	if err != nil {
		t.Fatalf("Create(%v): %v", k, err)
	}
	return r
}

func mustUpdate(t *testing.T, s store.Store, k store.Key, v []byte, rev int64) store.Resource {
	t.Helper()
	r, err := s.Update(t.Context(), k, v, rev)
	if err != nil {
		t.Fatalf("Update(%v, rev %d): %v", k, rev, err)
	}
	return r
}

func mustRevision(t *testing.T, s store.Store) int64 {
	t.Helper()
	rev, err := s.Revision(t.Context())
	if err != nil {
		t.Fatalf("Revision: %v", err)
	}
	return rev
}

// wantErr fails unless err wraps target and its message names k.
func wantErr(t *testing.T, op string, err, target error, k store.Key) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v, want %v", op, err, target)
	}
	if !strings.Contains(err.Error(), k.String()) {
		t.Errorf("%s: error %q does not name %v", op, err, k)
	}
}

func checkResource(t *testing.T, op string, got store.Resource, k store.Key, value []byte, rev int64) {
	t.Helper()
	if got.Key != k || string(got.Value) != string(value) || got.Revision != rev {
		t.Errorf("%s = {%v rev %d %s}, want {%v rev %d %s}", op, got.Key, got.Revision, got.Value, k, rev, value)
	}
}

func testCreateGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.Get(ctx, web); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get before Create: %v, want ErrNotFound", err)
	}
	in := doc("1")
	r := mustCreate(t, s, web, in)
	in[0] = 'X' // the store must not retain the caller's slice
	if r.Revision <= 0 {
		t.Errorf("Create revision %d, want > 0", r.Revision)
	}
	checkResource(t, "Create", r, web, doc("1"), r.Revision)
	got, err := s.Get(ctx, web)
	if err != nil {
		t.Fatal(err)
	}
	checkResource(t, "Get", got, web, doc("1"), r.Revision)

	_, err = s.Create(ctx, web, doc("2"))
	wantErr(t, "second Create", err, store.ErrExists, web)
	if got, _ := s.Get(ctx, web); got.Revision != r.Revision || string(got.Value) != string(doc("1")) {
		t.Errorf("failed Create changed the resource: %+v", got)
	}

	m := mustCreate(t, s, mesh, doc("m"))
	got, err = s.Get(ctx, mesh)
	if err != nil {
		t.Fatalf("Get cluster-scoped: %v", err)
	}
	checkResource(t, "Get cluster-scoped", got, mesh, doc("m"), m.Revision)
	if _, err := s.Get(ctx, webProd); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get other namespace: %v, want ErrNotFound", err)
	}
}

func testUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.Update(ctx, web, doc("x"), 5)
	wantErr(t, "conditional Update of missing key", err, store.ErrNotFound, web)

	c := mustCreate(t, s, web, doc("1"))
	u := mustUpdate(t, s, web, doc("2"), c.Revision)
	if u.Revision <= c.Revision {
		t.Errorf("Update revision %d, want > %d", u.Revision, c.Revision)
	}
	checkResource(t, "Update", u, web, doc("2"), u.Revision)

	_, err = s.Update(ctx, web, doc("stale"), c.Revision)
	wantErr(t, "stale Update", err, store.ErrConflict, web)
	if got, _ := s.Get(ctx, web); got.Revision != u.Revision || string(got.Value) != string(doc("2")) {
		t.Errorf("conflicting Update changed the resource: %+v", got)
	}

	v := mustUpdate(t, s, web, doc("3"), 0)
	if v.Revision <= u.Revision {
		t.Errorf("unconditional Update revision %d, want > %d", v.Revision, u.Revision)
	}
	up := mustUpdate(t, s, api, doc("new"), 0) // upsert
	got, err := s.Get(ctx, api)
	if err != nil {
		t.Fatalf("Get after upsert: %v", err)
	}
	checkResource(t, "Get after upsert", got, api, doc("new"), up.Revision)

	e := mustUpdate(t, s, web, []byte{}, v.Revision)
	if got, _ := s.Get(ctx, web); len(got.Value) != 0 || got.Revision != e.Revision {
		t.Errorf("Update with an empty value: got %+v", got)
	}
}

func testDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.Delete(ctx, web, 0)
	wantErr(t, "Delete missing", err, store.ErrNotFound, web)
	_, err = s.Delete(ctx, web, 3)
	wantErr(t, "conditional Delete missing", err, store.ErrNotFound, web)

	c := mustCreate(t, s, web, doc("1"))
	u := mustUpdate(t, s, web, doc("2"), 0)
	_, err = s.Delete(ctx, web, c.Revision)
	wantErr(t, "stale Delete", err, store.ErrConflict, web)
	if _, err := s.Get(ctx, web); err != nil {
		t.Fatalf("conflicting Delete removed the resource: %v", err)
	}
	d, err := s.Delete(ctx, web, u.Revision)
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	checkResource(t, "Delete", d, web, doc("2"), u.Revision)
	if _, err := s.Get(ctx, web); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after Delete: %v, want ErrNotFound", err)
	}
	if rev := mustRevision(t, s); rev <= u.Revision {
		t.Errorf("Revision after Delete %d, want > %d", rev, u.Revision)
	}

	mustCreate(t, s, web, doc("again"))
	d, err = s.Delete(ctx, web, 0)
	if err != nil || string(d.Value) != string(doc("again")) {
		t.Errorf("unconditional Delete = %+v, %v", d, err)
	}
}

func testInvalidKey(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, k := range []store.Key{
		{Kind: "", Name: "x"},
		{Kind: "Service", Namespace: "default"},
		{Kind: "Serv/ice", Name: "x"},
		{Kind: "Service", Namespace: "a/b", Name: "x"},
		{Kind: "Service", Name: "x\x00"},
	} {
		if _, err := s.Create(ctx, k, doc("1")); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Create(%q): %v, want ErrInvalidKey", k, err)
		}
		if _, err := s.Get(ctx, k); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Get(%q): %v, want ErrInvalidKey", k, err)
		}
	}
	if _, _, err := s.List(ctx, "a/b"); !errors.Is(err, store.ErrInvalidKey) {
		t.Errorf("List(a/b): %v, want ErrInvalidKey", err)
	}
}

func testRevisionsIncrease(t *testing.T, s store.Store) {
	ctx := t.Context()
	last := mustRevision(t, s)
	step := func(op string, rev int64, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		if rev <= last {
			t.Fatalf("%s: revision %d, want > %d", op, rev, last)
		}
		if cur := mustRevision(t, s); cur != rev {
			t.Fatalf("%s: Revision() = %d, want the write's %d", op, cur, rev)
		}
		last = rev
	}
	for i := range 5 {
		r, err := s.Update(ctx, web, doc(string(rune('a'+i))), 0)
		step("Update", r.Revision, err)
	}
	r, err := s.Create(ctx, api, doc("1"))
	step("Create", r.Revision, err)
	if _, err := s.Delete(ctx, api, 0); err != nil {
		t.Fatal(err)
	}
	if rev := mustRevision(t, s); rev <= last {
		t.Fatalf("Delete: Revision() = %d, want > %d", rev, last)
	}
	last = mustRevision(t, s)
	if _, err := s.Create(ctx, web, doc("dup")); err == nil {
		t.Fatal("Create of an existing key succeeded")
	}
	if rev := mustRevision(t, s); rev != last {
		t.Errorf("failed Create moved the revision from %d to %d", last, rev)
	}
}

func testList(t *testing.T, s store.Store) {
	ctx := t.Context()
	items, rev, err := s.List(ctx, "")
	if err != nil || len(items) != 0 {
		t.Fatalf("List of an empty store = %v, %v", items, err)
	}
	if want := mustRevision(t, s); rev != want {
		t.Errorf("empty List revision %d, want %d", rev, want)
	}
	keys := []store.Key{
		webProd, api, web, mesh,
		{Kind: "ServiceX", Namespace: "default", Name: "web"},
		{Kind: "Serv", Namespace: "default", Name: "web"},
		{Kind: "Service", Namespace: "default", Name: "api-v2"},
		{Kind: "Service", Namespace: "def", Name: "zeta"},
		{Kind: "Mesh", Name: "alpha"},
	}
	var last int64
	for i, k := range keys {
		last = mustCreate(t, s, k, doc(string(rune('a'+i)))).Revision
	}
	sorted := slices.Clone(keys)
	slices.SortFunc(sorted, store.Key.Compare)

	check := func(kind string) {
		t.Helper()
		items, rev, err := s.List(ctx, kind)
		if err != nil {
			t.Fatalf("List(%q): %v", kind, err)
		}
		if rev != last {
			t.Errorf("List(%q) revision %d, want %d", kind, rev, last)
		}
		var got, want []string
		for _, it := range items {
			got = append(got, it.String())
			i := slices.Index(keys, it.Key)
			if i < 0 || string(it.Value) != string(doc(string(rune('a'+i)))) || it.Revision <= 0 {
				t.Errorf("List(%q): unexpected item %v rev %d %s", kind, it.Key, it.Revision, it.Value)
			}
		}
		for _, k := range sorted {
			if kind == "" || k.Kind == kind {
				want = append(want, k.String())
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("List(%q) keys\n got %q\nwant %q", kind, got, want)
		}
	}
	check("")
	check("Service")
	check("Mesh")
	check("Serv")
	if items, _, err := s.List(ctx, "Nothing"); err != nil || len(items) != 0 {
		t.Errorf("List(Nothing) = %v, %v", items, err)
	}
	last = mustUpdate(t, s, web, doc("c"), 0).Revision // value unchanged, revision moves
	check("Service")
}

// ctx returns a context for one watch that the test can cancel.
func watchCtx(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithCancel(t.Context())
}
