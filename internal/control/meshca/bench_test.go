package meshca_test

import (
	"testing"

	"github.com/trellis-mesh/trellis/internal/control/meshca"
)

// Bundle is read for every proxy push.
func BenchmarkBundle(b *testing.B) {
	m, err := meshca.New(meshca.Options{Store: openStore(b)})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := m.Ensure(b.Context(), "default"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := m.Bundle("default"); !ok {
			b.Fatal("no bundle")
		}
	}
}
