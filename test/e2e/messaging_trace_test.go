package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestMeshMessagingTrace: a Mesh with spec.tracing.messaging {nats, kafka}
// makes the publisher's sidecar put a W3C traceparent on what its
// application publishes: franz-go's records (uncompressed) and nats.go's
// PUBs reach the brokers, read there directly, with a valid traceparent
// and their payloads intact, through two sidecars with mutual TLS.
func TestMeshMessagingTrace(t *testing.T) {
	kc := startKfake(t, 1, "orders")
	natsPort := startNATS(t)
	cp := startControl(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0", "--name", "cp-1")
	dir := t.TempDir()
	ports := freePorts(t, 5) // broker kafka, nats; producer kafka, nats; the (absent) collector
	brokerBase := freeRange(t, 1)
	docs := []string{fmt.Sprintf(`apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata: {name: default}
spec:
  mtls: {mode: STRICT}
  tracing:
    collector: 127.0.0.1:%d
    sampling: 100
    messaging: {nats: true, kafka: true}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: kafka}
spec: {selector: {app: brokers}, ports: [{port: 9092, protocol: kafka}]}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: nats}
spec: {selector: {app: brokers}, ports: [{port: 4222, protocol: nats}]}
`, ports[4]), fmt.Sprintf(`apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: broker-0, labels: {app: brokers}}
spec:
  address: 127.0.0.1
  inbound:
  - {port: %d, servicePort: 9092, appPort: %d, kafkaBrokerID: 0}
  - {port: %d, servicePort: 4222, appPort: %d}
`, ports[0], portOf(t, kc.ListenAddrs()[0]), ports[1], natsPort), fmt.Sprintf(`apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: producer-1, labels: {app: producer}}
spec:
  address: 127.0.0.1
  outbound:
  - {service: kafka, localPort: %d, kafka: {brokerPortBase: %d, maxBrokerID: 0}}
  - {service: nats, localPort: %d}
`, ports[2], brokerBase, ports[3])}
	applyYAML(t, cp.cfg, dir, "mesh.yaml", strings.Join(docs, "---\n"))
	brokerDP, producerDP := writeFile(t, dir, "broker-0.yaml", docs[1]), writeFile(t, dir, "producer-1.yaml", docs[2])
	token := func(svc string) string {
		tok := strings.TrimSpace(mustCLI(t, cp.cfg, "token", "create", "--mesh", "default", "--service", svc))
		return writeFile(t, dir, svc+".token", tok+"\n")
	}
	broker := startProxy(t, cp, brokerDP, token("brokers"))
	producer := startProxy(t, cp, producerDP, token("producer"))
	waitReady(t, "broker-0", broker, 30*time.Second)
	waitReady(t, "producer-1", producer, 30*time.Second)
	kafkaAddr, natsAddr := fmt.Sprintf("127.0.0.1:%d", ports[2]), fmt.Sprintf("127.0.0.1:%d", ports[3])
	waitListening(t, "producer's outbound ports", kafkaAddr, natsAddr, fmt.Sprintf("127.0.0.1:%d", brokerBase))
	traceparent := regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-01$`)

	t.Run("kafka", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cl, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddr), kgo.ProducerBatchCompression(kgo.NoCompression()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		const n = 20
		var recs []*kgo.Record
		for i := range n {
			recs = append(recs, &kgo.Record{Topic: "orders", Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint("order-", i)),
				Headers: []kgo.RecordHeader{{Key: "app", Value: []byte("shop")}}})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce through the mesh: %v", err)
		}
		direct, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()[0]), kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		defer direct.Close()
		got := 0
		for got < n {
			fs := direct.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("read %d of %d records from the broker: %v", got, n, ctx.Err())
			}
			fs.EachRecord(func(r *kgo.Record) {
				got++
				hs := map[string]string{}
				for _, h := range r.Headers {
					hs[h.Key] = string(h.Value)
				}
				if len(r.Headers) != 2 || hs["app"] != "shop" || !traceparent.MatchString(hs["traceparent"]) || string(r.Value) != "order-"+string(r.Key) {
					t.Errorf("record %q=%q stored with headers %v", r.Key, r.Value, hs)
				}
			})
		}
		waitMetric(t, "records given a traceparent", n, []*meshProxy{producer}, "trellis_kafka_trace_injected_total{")
	})

	t.Run("nats", func(t *testing.T) {
		sub, err := natsgo.Connect(fmt.Sprintf("nats://127.0.0.1:%d", natsPort))
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		s, err := sub.SubscribeSync("orders.nats")
		if err != nil {
			t.Fatal(err)
		}
		if err := sub.Flush(); err != nil {
			t.Fatal(err)
		}
		pub, err := natsgo.Connect("nats://" + natsAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer pub.Close()
		if err := pub.Publish("orders.nats", []byte("hello")); err != nil {
			t.Fatal(err)
		}
		if err := pub.Flush(); err != nil {
			t.Fatal(err)
		}
		m, err := s.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if tp := m.Header.Get("traceparent"); !traceparent.MatchString(tp) || string(m.Data) != "hello" {
			t.Fatalf("message %q arrived with traceparent %q", m.Data, tp)
		}
	})
}
