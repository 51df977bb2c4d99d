package telemetry

import (
	"fmt"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
)

// BenchmarkIngest measures one push of a busy sidecar: 20 outbound
// clusters with a few response codes, their latency histograms,
// connections and bytes, routes, and an inbound, plus the Go runtime
// families a proxy sends along. Pushes alternate between two snapshots,
// so every other one is an increase and the others a counter reset.
func BenchmarkIngest(b *testing.B) {
	snap := func(n int) []*dto.MetricFamily {
		reg := metrics.New()
		for c := range 20 {
			cl := reg.Cluster(fmt.Sprintf("default/svc-%d:80", c))
			rt := reg.Route("default/svc:80", "default/svc:80", fmt.Sprintf("default/route-%d/rule/0/match/0", c))
			for i := range n {
				code := []int{200, 200, 200, 404, 503}[i%5]
				cl.Done(code)
				cl.Duration.Observe(float64(i%100) / 1000)
				rt.Done(code)
				rt.Duration.Observe(float64(i%100) / 1000)
			}
			cl.Connections.Add(float64(n / 10))
			cl.BytesSent.Add(float64(n * 100))
			cl.BytesReceived.Add(float64(n * 1000))
		}
		h := reg.HTTP("inbound:8080")
		for i := range n {
			h.Done(200)
			h.Duration.Observe(float64(i%100) / 1000)
		}
		fams, err := reg.Prom.Gather()
		if err != nil {
			b.Fatal(err)
		}
		return fams
	}
	pushes := [2][]*dto.MetricFamily{snap(100), snap(200)}
	a, err := New(Options{Resolver: mesh})
	if err != nil {
		b.Fatal(err)
	}
	for _, id := range []string{"default/web-1", "default/api-1"} {
		_ = a.Ingest(id, pushes[0])
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if err := a.Ingest("default/web-1", pushes[i%2]); err != nil {
			b.Fatal(err)
		}
	}
}
