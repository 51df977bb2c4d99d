package file

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/trellis-mesh/trellis/internal/discovery"
)

const twoDataplanes = `apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: db-1, labels: {app: db}}
spec: {address: 10.0.0.1, inbound: [{port: 5432, appPort: 5432}]}
---
apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: db-2, labels: {app: db}}
spec: {address: 10.0.0.2, inbound: [{port: 5432, appPort: 5432}]}
`

const oneDataplane = `apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: cache-1, labels: {app: cache}}
spec: {address: 10.0.1.1, inbound: [{port: 6379, appPort: 6379}]}
`

func names(s discovery.Snapshot) []string {
	var out []string
	for _, dp := range s.Dataplanes {
		out = append(out, dp.Name)
	}
	return out
}

func TestFileSource(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("db.yaml", twoDataplanes)
	write("README.md", "not a dataplane")
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		out := make(chan discovery.Snapshot, 16)
		done := make(chan struct{})
		go func() { (&Source{Dir: dir, Interval: time.Second}).Run(ctx, out); close(done) }()
		next := func() (discovery.Snapshot, bool) {
			time.Sleep(1100 * time.Millisecond)
			synctest.Wait()
			select {
			case s := <-out:
				return s, true
			default:
				return discovery.Snapshot{}, false
			}
		}
		s, ok := next()
		if !ok || len(s.Dataplanes) != 2 || s.Source != "file:"+dir {
			t.Fatalf("first view: %v %v", ok, names(s))
		}
		if s.Dataplanes[0].Spec.Inbound[0].AppAddress != "127.0.0.1" {
			t.Fatalf("dataplanes are not defaulted: %+v", s.Dataplanes[0].Spec.Inbound[0])
		}
		if _, ok := next(); ok {
			t.Fatal("an unchanged directory sent a view")
		}
		write("cache.yaml", oneDataplane)
		if s, ok = next(); !ok || len(s.Dataplanes) != 3 {
			t.Fatalf("after adding a file: %v %v", ok, names(s))
		}
		// A broken edit keeps what the file held.
		write("db.yaml", "apiVersion: trellis.dev/v1alpha1\nkind: Dataplane\nmetadata: {name: db-1}\nspec: {address: not-an-ip}\n")
		if s, ok = next(); ok {
			t.Fatalf("an invalid file changed the view: %v", names(s))
		}
		if err := os.Remove(filepath.Join(dir, "db.yaml")); err != nil {
			t.Fatal(err)
		}
		if s, ok = next(); !ok || len(s.Dataplanes) != 1 || s.Dataplanes[0].Name != "cache-1" {
			t.Fatalf("after removing a file: %v %v", ok, names(s))
		}
		cancel()
		<-done
	})
}

func TestParseRefusesOtherKinds(t *testing.T) {
	_, err := parse([]byte("apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: x}\nspec: {selector: {a: b}, ports: [{port: 80}]}\n"))
	if err == nil || err.Error() != "document 1: kind Service, want Dataplane" {
		t.Fatalf("err = %v", err)
	}
}
