package control

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
	"github.com/trellis-mesh/trellis/internal/store"
	"github.com/trellis-mesh/trellis/internal/store/bolt"
)

// TestDataplanesDir checks the file discovery source end to end: Dataplanes
// listed in a directory are stored with their source, unchanged files
// write nothing, and a removed file withdraws its Dataplanes.
func TestDataplanesDir(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "db.yaml")
	if err := os.WriteFile(file, []byte(`apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: db-1, labels: {app: db}}
spec: {address: 10.0.0.1, inbound: [{port: 5432, appPort: 5432}]}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := bolt.Open(filepath.Join(t.TempDir(), "trellis.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, err := New(Options{Store: st, APIAddr: "127.0.0.1:0", XDSAddr: "127.0.0.1:0", DataplanesDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	key := store.Key{Kind: v1alpha1.KindDataplane, Namespace: "default", Name: "db-1"}
	var res store.Resource
	waitUntil(t, "the dataplane file is registered", func() bool {
		res, err = st.Get(ctx, key)
		return err == nil
	})
	obj, err := v1alpha1.Decode(res.Value)
	if err != nil {
		t.Fatal(err)
	}
	if got := obj.GetAnnotations()[SourceAnnotation]; got != "file:"+dir {
		t.Fatalf("source annotation %q", got)
	}
	rev, _ := st.Revision(ctx)
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the dataplane is withdrawn", func() bool {
		_, err := st.Get(ctx, key)
		return errors.Is(err, store.ErrNotFound)
	})
	if now, _ := st.Revision(ctx); now != rev+1 {
		t.Fatalf("store revision moved from %d to %d: the unchanged directory was written again", rev, now)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
}
