package translator

import (
	"os"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"golang.org/x/tools/txtar"
)

// TestTracingProxylessAndUntraced: in the traced mesh of
// testdata/tracing.txtar a proxyless client gets neither the collector's
// cluster nor tracing (grpc-go reads none of it), and without
// spec.tracing a sidecar gets neither either.
func TestTracingProxylessAndUntraced(t *testing.T) {
	data, err := os.ReadFile("testdata/tracing.txtar")
	if err != nil {
		t.Fatal(err)
	}
	var resources []byte
	for _, f := range txtar.Parse(data).Files {
		if f.Name == "resources.yaml" {
			resources = f.Data
		}
	}
	check := func(name string, r *Resources) {
		t.Helper()
		for _, c := range r.Clusters {
			if c.(*clusterv3.Cluster).GetName() == TracingCluster {
				t.Errorf("%s: has cluster %s", name, TracingCluster)
			}
		}
		if out := string(render(t, r)); strings.Contains(out, "tracing") {
			t.Errorf("%s: output mentions tracing:\n%s", name, out)
		}
	}
	objs := decodeObjects(t, resources)
	pl, err := Translate(NewIndex(objs), Proxy{Mesh: "shop", Proxyless: true})
	if err != nil {
		t.Fatal(err)
	}
	check("proxyless", pl)

	untraced := decodeObjects(t, []byte(strings.Replace(string(resources), `  tracing: {collector: "10.0.0.9:4317"}`+"\n", "", 1)))
	p := proxyFor(t, []byte("dataplane: web-1"), untraced)
	r, err := Translate(NewIndex(untraced), p)
	if err != nil {
		t.Fatal(err)
	}
	check("sidecar without spec.tracing", r)
}
