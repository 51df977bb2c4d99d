package bolt

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/internal/store"
	"github.com/trellis-mesh/trellis/internal/store/storetest"
)

func open(t *testing.T, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "trellis.db"), Options{})
	}, storetest.Options{
		Reopen: func(t *testing.T, s store.Store) store.Store {
			path := s.(*Store).Path()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return open(t, path, Options{})
		},
		Compact: func(t *testing.T, s store.Store, rev int64) {
			if err := s.(*Store).Compact(t.Context(), rev); err != nil {
				t.Fatal(err)
			}
		},
	})
}

func TestHistoryLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trellis.db")
	s := open(t, path, Options{History: 3})
	ctx := t.Context()
	k := store.Key{Kind: "Service", Namespace: "default", Name: "web"}
	for i := range 5 {
		if _, err := s.Update(ctx, k, []byte{byte('0' + i)}, 0); err != nil {
			t.Fatal(err)
		}
	}
	// Revisions 3, 4, 5 are kept: Watch(2) works, Watch(1) does not.
	if _, err := s.Watch(ctx, 1); !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("Watch(1) with history 3 at revision 5: %v, want ErrCompacted", err)
	}
	ch, err := s.Watch(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	for want := int64(3); want <= 5; want++ {
		select {
		case ev := <-ch:
			if ev.Revision != want {
				t.Fatalf("event revision %d, want %d", ev.Revision, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no event")
		}
	}
	s.Close()

	// Reopening with a smaller history trims at once; revisions continue.
	s = open(t, path, Options{History: 1})
	if _, err := s.Watch(ctx, 3); !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("Watch(3) after reopening with history 1: %v, want ErrCompacted", err)
	}
	if _, err := s.Watch(ctx, 4); err != nil {
		t.Fatalf("Watch(4): %v", err)
	}
	r, err := s.Update(ctx, k, []byte("x"), 0)
	if err != nil || r.Revision != 6 {
		t.Fatalf("Update after reopen = rev %d, %v; want 6", r.Revision, err)
	}
}

func TestSlowWatcherDropped(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "trellis.db"), Options{WatchQueue: 4, NoSync: true})
	ctx := t.Context()
	slow, err := s.Watch(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	k := store.Key{Kind: "Service", Namespace: "default", Name: "web"}
	// The reader takes nothing: the writes must all complete anyway.
	for i := range 20 {
		if _, err := s.Update(ctx, k, []byte{byte('a' + i)}, 0); err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	deadline := time.After(10 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-slow:
			if open {
				got++
			}
		case <-deadline:
			t.Fatal("slow watcher's channel not closed")
		}
	}
	if got >= 20 {
		t.Fatalf("slow watcher received all %d events, want it dropped", got)
	}
	if ctx.Err() != nil {
		t.Fatal("ctx ended: the drop must be visible with a live ctx")
	}
	// Resuming from the last revision received is possible while history lasts.
	ch, err := s.Watch(ctx, int64(got))
	if err != nil {
		t.Fatalf("resume Watch(%d): %v", got, err)
	}
	for want := int64(got + 1); want <= 20; want++ {
		select {
		case ev := <-ch:
			if ev.Revision != want {
				t.Fatalf("resumed event revision %d, want %d", ev.Revision, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no resumed event")
		}
	}
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trellis.db")
	open(t, path, Options{})
	start := time.Now()
	_, err := Open(path, Options{LockTimeout: 100 * time.Millisecond})
	if err == nil {
		t.Fatal("second Open of a locked file succeeded")
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "locked") {
		t.Errorf("error %q does not name the path and the lock", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second Open took %v", d)
	}
}

func TestBackup(t *testing.T) {
	dir := t.TempDir()
	s := open(t, filepath.Join(dir, "trellis.db"), Options{})
	ctx := t.Context()
	k := store.Key{Kind: "Mesh", Name: "default"}
	r, err := s.Create(ctx, k, []byte(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, k, []byte(`{"a":2}`), 0); err != nil { // not in the backup
		t.Fatal(err)
	}
	copyPath := filepath.Join(dir, "backup.db")
	if err := os.WriteFile(copyPath, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	b := open(t, copyPath, Options{})
	got, err := b.Get(ctx, k)
	if err != nil || got.Revision != r.Revision || string(got.Value) != `{"a":1}` {
		t.Fatalf("Get from backup = %+v, %v", got, err)
	}
	if rev, _ := b.Revision(ctx); rev != r.Revision {
		t.Errorf("backup revision %d, want %d", rev, r.Revision)
	}
}

func TestClosedStore(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "trellis.db"), Options{})
	s.Close()
	k := store.Key{Kind: "Mesh", Name: "default"}
	if _, err := s.Create(context.Background(), k, []byte("{}")); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Create after Close: %v, want a closed error", err)
	}
	if _, err := s.Watch(context.Background(), 0); err == nil {
		t.Error("Watch after Close succeeded")
	}
}
