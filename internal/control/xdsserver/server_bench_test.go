package xdsserver

import (
	"fmt"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
)

// fiftyClusters is a node's configuration with 50 EDS clusters of two
// endpoints each, one listener and one route configuration naming them.
func fiftyClusters(b *testing.B, port int) Resources {
	weights := map[string]uint32{}
	var r Resources
	for i := range 50 {
		name := fmt.Sprintf("svc-%02d", i)
		weights[name] = 1
		r.Clusters = append(r.Clusters, edsCluster(name, clusterv3.Cluster_ROUND_ROBIN))
		r.Endpoints = append(r.Endpoints, loadAssignment(name,
			fmt.Sprintf("10.0.%d.1:%d", i, port), fmt.Sprintf("10.0.%d.2:%d", i, port)))
	}
	r.Listeners = []types.Resource{apiListener(b, "mesh", "mesh")}
	r.Routes = []types.Resource{weightedRoute("mesh", weights)}
	return r
}

// BenchmarkSetResources measures a push decision for one node: the
// unchanged case (hashing only, nothing sent) and the case where every
// endpoint changes (hashing, consistency check, snapshot swap).
func BenchmarkSetResources(b *testing.B) {
	b.Run("unchanged", func(b *testing.B) {
		s := New(Options{})
		r := fiftyClusters(b, 8080)
		if _, err := s.SetResources("n", r); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if changed, err := s.SetResources("n", r); err != nil || changed {
				b.Fatal(changed, err)
			}
		}
	})
	b.Run("endpoints-changed", func(b *testing.B) {
		s := New(Options{})
		rs := [2]Resources{fiftyClusters(b, 8080), fiftyClusters(b, 9090)}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if changed, err := s.SetResources("n", rs[i%2]); err != nil || !changed {
				b.Fatal(changed, err)
			}
			i++
		}
	})
	b.Run("route-changed", func(b *testing.B) {
		// What the translator hands over after a route change: the same
		// listener, cluster and endpoint messages, a new route
		// configuration.
		s := New(Options{})
		base := fiftyClusters(b, 8080)
		other := base
		other.Routes = []types.Resource{weightedRoute("mesh", map[string]uint32{"svc-00": 1})}
		rs := [2]Resources{base, other}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if changed, err := s.SetResources("n", rs[i%2]); err != nil || (!changed && i > 0) {
				b.Fatal(changed, err)
			}
			i++
		}
	})
}
