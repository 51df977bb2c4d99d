package etcd

import (
	"fmt"
	"testing"

	"github.com/trellis-mesh/trellis/internal/store"
	"github.com/trellis-mesh/trellis/internal/store/etcd/etcdtest"
)

var benchDoc = []byte(`{"apiVersion":"trellis.dev/v1alpha1","kind":"Service","metadata":{"name":"web","namespace":"default"},"spec":{"ports":[{"port":80,"protocol":"http"}],"selector":{"app":"web"}}}`)

// BenchmarkUpdate is one conditional update against an embedded etcd
// member over loopback gRPC.
func BenchmarkUpdate(b *testing.B) {
	s := New(b.Context(), client(b, etcdtest.Start(b)), "/trellis")
	b.Cleanup(func() { s.Close() })
	ctx := b.Context()
	k := store.Key{Kind: "Service", Namespace: "default", Name: "web"}
	r, err := s.Create(ctx, k, benchDoc)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if r, err = s.Update(ctx, k, benchDoc, r.Revision); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkList lists one kind of 1,000 resources among 2,000.
func BenchmarkList(b *testing.B) {
	s := New(b.Context(), client(b, etcdtest.Start(b)), "/trellis")
	b.Cleanup(func() { s.Close() })
	ctx := b.Context()
	for i := range 1000 {
		for _, kind := range []string{"Service", "Dataplane"} {
			if _, err := s.Create(ctx, store.Key{Kind: kind, Namespace: "default", Name: fmt.Sprintf("r-%04d", i)}, benchDoc); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		items, _, err := s.List(ctx, "Service")
		if err != nil || len(items) != 1000 {
			b.Fatalf("List = %d items, %v", len(items), err)
		}
	}
}
