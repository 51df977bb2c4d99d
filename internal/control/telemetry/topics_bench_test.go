package telemetry

import (
	"fmt"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
)

// BenchmarkIngestMessaging measures one push of a sidecar that talks to
// brokers: 20 Kafka topics and 20 NATS subjects through the protocol
// filters (outbound, with denials), and the HTTP bridge publishing to 10
// topics and delivering 10 subscriptions with retries, dead letters and
// lag, plus the Go runtime families. Pushes alternate between two
// snapshots, as in BenchmarkIngest.
func BenchmarkIngestMessaging(b *testing.B) {
	snap := func(n int) []*dto.MetricFamily {
		reg := metrics.New()
		k := reg.Kafka("outbound:default/kafka:9092")
		nt := reg.NATS("outbound:default/events:4222")
		br := newBridgeVecs(reg)
		for i := range 20 {
			k.Topic(fmt.Sprintf("topic-%d", i)).Produced(int64(n), int64(n*100))
			k.Topic(fmt.Sprintf("topic-%d", i)).Fetched(int64(n), int64(n*100))
			for range n {
				nt.Subject(metrics.NATSPublish, fmt.Appendf(nil, "subject.%d", i)).Add(10)
			}
			nt.Denied("publish", fmt.Appendf(nil, "secret.%d", i))
			k.DeniedTopic(0)
		}
		for i := range 10 {
			sub, topic := fmt.Sprintf("default/sub-%d", i), fmt.Sprintf("topic-%d", i)
			br.published.WithLabelValues("kafka", topic, "ok").Add(float64(n))
			br.delivered.WithLabelValues(sub, "kafka", topic, "ok").Add(float64(n))
			br.delivered.WithLabelValues(sub, "kafka", topic, "rejected").Add(float64(n / 10))
			br.delivered.WithLabelValues(sub, "kafka", topic, "dead_lettered").Add(float64(n / 100))
			br.retries.WithLabelValues(sub).Add(float64(n / 10))
			br.lag.WithLabelValues(sub).Set(float64(n))
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
	_ = a.Ingest("default/web-1", pushes[0])
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if err := a.Ingest("default/web-1", pushes[i%2]); err != nil {
			b.Fatal(err)
		}
	}
}
