package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The messaging scenario's resources: STRICT mutual TLS; the kafka and
// nats Services, both served by the "brokers" instances; Kafka topics
// orders.* writable by producer and readable by consumer and intruder
// (ALLOW: everything else refused, so intruder's produce is); NATS
// publishing to orders.> refused to intruder (DENY: everything else
// allowed); consumer's fetches of orders.paid and subscriptions
// overlapping orders.nats reported (AUDIT: nothing refused).
const messagingResources = `apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata: {name: default}
spec: {mtls: {mode: STRICT}}
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
---
apiVersion: trellis.dev/v1alpha1
kind: AccessPolicy
metadata: {name: kafka-clients}
spec:
  targetRefs: [{group: "", kind: Service, name: kafka}]
  action: ALLOW
  rules:
  - from: [{service: producer}]
    to: [{kafka: {topics: ["orders.*"], operations: [produce]}}]
  - from: [{service: consumer}, {service: intruder}]
    to: [{kafka: {topics: ["orders.*"], operations: [consume]}}]
---
apiVersion: trellis.dev/v1alpha1
kind: AccessPolicy
metadata: {name: nats-no-intruder}
spec:
  targetRefs: [{group: "", kind: Service, name: nats}]
  action: DENY
  rules:
  - from: [{service: intruder}]
    to: [{nats: {subjects: ["orders.>"], operations: [publish]}}]
---
apiVersion: trellis.dev/v1alpha1
kind: AccessPolicy
metadata: {name: watch-consumer}
spec:
  targetRefs: [{group: "", kind: Service, name: kafka}, {group: "", kind: Service, name: nats}]
  action: AUDIT
  rules:
  - from: [{service: consumer}]
    to:
    - kafka: {topics: [orders.paid], operations: [consume]}
    - nats: {subjects: [orders.nats], operations: [subscribe]}
`

// msgClient is a client application's sidecar: where its Kafka bootstrap,
// its broker ports and its NATS port are.
type msgClient struct {
	name       string
	kafka      string // 127.0.0.1:PORT, the bootstrap
	brokerBase int    // broker id b on brokerBase+b
	nats       string // nats://127.0.0.1:PORT
	proxy      *meshProxy
}

// TestMeshMessaging runs Kafka and NATS through two sidecars with mutual
// TLS: a kfake cluster of two brokers, each behind its own sidecar
// (broker-0's also fronts a nats-server), and three client applications
// with the native clients (franz-go, nats.go), each through its own
// sidecar. The callers' sidecars serve every broker on a local port of
// its own and rewrite the brokers' addresses to them (the client's
// metadata names only those); the producer's 2,000 records over two
// topics (partition p led by broker p) all reach the consumer (a
// consumer group coordinated by broker 1: FindCoordinator goes through
// the rewrite too), as do 2,000 NATS messages; the intruder's
// produce is answered TOPIC_AUTHORIZATION_FAILED and its publish
// nats-server's permissions violation, and neither arrives; the
// consumer's audited fetches and subscription are counted, not refused; the per-topic
// and per-subject metrics of the sidecars match the traffic.
func TestMeshMessaging(t *testing.T) {
	const perTopic, natsMsgs = 1000, 2000
	topics := []string{"orders.created", "orders.paid"}
	kc := startKfake(t, 2, topics...)
	natsPort := startNATS(t)
	cp := startControl(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0", "--name", "cp-1")
	dir := t.TempDir()

	ports := freePorts(t, 3+2*3) // broker-0 kafka and nats, broker-1 kafka; per client kafka and nats
	brokerAddrs := kc.ListenAddrs()
	docs := []string{messagingResources, fmt.Sprintf(`apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: broker-0, labels: {app: brokers}}
spec:
  address: 127.0.0.1
  inbound:
  - {port: %d, servicePort: 9092, appPort: %d, kafkaBrokerID: 0}
  - {port: %d, servicePort: 4222, appPort: %d}
`, ports[0], portOf(t, brokerAddrs[0]), ports[1], natsPort), fmt.Sprintf(`apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: broker-1, labels: {app: brokers}}
spec:
  address: 127.0.0.1
  inbound:
  - {port: %d, servicePort: 9092, appPort: %d, kafkaBrokerID: 1}
`, ports[2], portOf(t, brokerAddrs[1]))}
	clients := map[string]*msgClient{}
	for i, name := range []string{"producer", "consumer", "intruder"} {
		c := &msgClient{name: name, kafka: fmt.Sprintf("127.0.0.1:%d", ports[3+2*i]),
			nats: fmt.Sprintf("nats://127.0.0.1:%d", ports[4+2*i]), brokerBase: freeRange(t, 2)}
		clients[name] = c
		docs = append(docs, fmt.Sprintf(`apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: %s-1, labels: {app: %s}}
spec:
  address: 127.0.0.1
  outbound:
  - {service: kafka, localPort: %d, kafka: {brokerPortBase: %d, maxBrokerID: 1}}
  - {service: nats, localPort: %d}
`, name, name, ports[3+2*i], c.brokerBase, ports[4+2*i]))
	}
	applyYAML(t, cp.cfg, dir, "mesh.yaml", strings.Join(docs, "---\n"))
	files := map[string]string{}
	for i, doc := range docs[1:] {
		name := []string{"broker-0", "broker-1", "producer-1", "consumer-1", "intruder-1"}[i]
		files[name] = writeFile(t, dir, name+".yaml", doc)
	}
	tokens := map[string]string{}
	for _, svc := range []string{"brokers", "producer", "consumer", "intruder"} {
		tok := strings.TrimSpace(mustCLI(t, cp.cfg, "token", "create", "--mesh", "default", "--service", svc))
		tokens[svc] = writeFile(t, dir, svc+".token", tok+"\n")
	}
	brokers := []*meshProxy{startProxy(t, cp, files["broker-0"], tokens["brokers"]), startProxy(t, cp, files["broker-1"], tokens["brokers"])}
	for _, c := range clients {
		c.proxy = startProxy(t, cp, files[c.name+"-1"], tokens[c.name])
	}
	for i, b := range brokers {
		waitReady(t, fmt.Sprintf("broker-%d", i), b, 30*time.Second)
	}
	for _, c := range clients {
		waitReady(t, c.name, c.proxy, 30*time.Second)
		waitListening(t, c.name+"'s outbound ports", c.kafka, strings.TrimPrefix(c.nats, "nats://"),
			fmt.Sprintf("127.0.0.1:%d", c.brokerBase), fmt.Sprintf("127.0.0.1:%d", c.brokerBase+1))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	group := groupOn(t, kc, 1)
	t.Run("kafka", func(t *testing.T) { kafkaThroughMesh(ctx, t, clients, brokers, topics, group, perTopic) })
	t.Run("nats", func(t *testing.T) { natsThroughMesh(t, clients, brokers[0], natsMsgs) })
}

// kafkaClient is a franz-go client of c's sidecar, closed at cleanup.
func kafkaClient(t *testing.T, c *msgClient, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.kafka), kgo.ClientID(c.name)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func kafkaThroughMesh(ctx context.Context, t *testing.T, clients map[string]*msgClient, brokers []*meshProxy, topics []string, group string, perTopic int) {
	producer, consumer, intruder := clients["producer"], clients["consumer"], clients["intruder"]

	// The brokers the client learns are its sidecar's broker ports.
	pc := kafkaClient(t, producer, kgo.ProducerLinger(5*time.Millisecond))
	md, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int32]string{}
	for _, b := range md.Brokers {
		got[b.NodeID] = fmt.Sprintf("%s:%d", b.Host, b.Port)
	}
	want := map[int32]string{0: fmt.Sprintf("127.0.0.1:%d", producer.brokerBase), 1: fmt.Sprintf("127.0.0.1:%d", producer.brokerBase+1)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("brokers in the producer's metadata = %v, want its sidecar's ports %v", got, want)
	}

	// The intruder may read orders.* but not write: a clear authorization
	// error, and nothing reaches the broker.
	ic := kafkaClient(t, intruder)
	err = ic.ProduceSync(ctx, &kgo.Record{Topic: topics[0], Value: []byte("intruder")}).FirstErr()
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("intruder's produce: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	t.Logf("intruder's produce refused: %v", err)

	var produced, failed atomic.Int64
	var wg sync.WaitGroup
	for i := range perTopic * len(topics) {
		wg.Add(1)
		r := &kgo.Record{Topic: topics[i%len(topics)], Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i)}
		pc.Produce(ctx, r, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				if failed.Add(1) == 1 {
					t.Errorf("produce: %v", err)
				}
				return
			}
			produced.Add(1)
		})
	}
	wg.Wait()
	if n := produced.Load(); n != int64(perTopic*len(topics)) {
		t.Fatalf("produced %d records, want %d (%d failed)", n, perTopic*len(topics), failed.Load())
	}

	cc := kafkaClient(t, consumer, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	type key struct {
		topic     string
		partition int32
		offset    int64
	}
	seen := map[key]bool{}
	perTopicGot := map[string]int{}
	for len(seen) < perTopic*len(topics) {
		fs := cc.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before the deadline: %v", len(seen), perTopic*len(topics), perTopicGot)
		}
		for _, e := range fs.Errors() {
			t.Fatalf("fetch %s/%d: %v", e.Topic, e.Partition, e.Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Value) == "intruder" {
				t.Errorf("the intruder's record reached the consumer: %s/%d@%d", r.Topic, r.Partition, r.Offset)
			}
			k := key{r.Topic, r.Partition, r.Offset}
			if !seen[k] {
				seen[k] = true
				perTopicGot[r.Topic]++
			}
		})
	}
	for _, tp := range topics {
		if perTopicGot[tp] != perTopic {
			t.Errorf("consumed %d records of %s, want %d", perTopicGot[tp], tp, perTopic)
		}
	}

	// Per-topic metrics: what the producer's sidecar let out, what both
	// brokers' sidecars let in, what the consumer's sidecar delivered.
	for _, tp := range topics {
		topic := `topic="` + tp + `"`
		waitMetric(t, "producer's sidecar records of "+tp, float64(perTopic), []*meshProxy{producer.proxy},
			"trellis_kafka_topic_records_total{", `direction="produced"`, `stat_prefix="outbound:default/kafka:9092"`, topic)
		waitMetric(t, "brokers' sidecars records of "+tp, float64(perTopic), brokers,
			"trellis_kafka_topic_records_total{", `direction="produced"`, `stat_prefix="inbound:default/kafka:9092"`, topic)
		waitMetric(t, "consumer's sidecar fetched records of "+tp, float64(perTopic), []*meshProxy{consumer.proxy},
			"trellis_kafka_topic_records_total{", `direction="fetched"`, `stat_prefix="outbound:default/kafka:9092"`, topic)
	}
	for i, b := range brokers {
		if n := metricValue(scrape(t, b), "trellis_kafka_requests_total{", `api="Produce"`, `stat_prefix="inbound:default/kafka:9092"`); n == 0 {
			t.Errorf("broker-%d's sidecar saw no Produce request: the records did not reach both brokers through the mesh", i)
		}
	}
	if n := metricSum(t, brokers, "trellis_kafka_denied_total{", `api="Produce"`, `reason="topic"`, `stat_prefix="inbound:default/kafka:9092"`); n < 1 {
		t.Errorf("brokers' sidecars counted %v refused Produce requests, want at least 1", n)
	}
	if n := metricSum(t, brokers, "trellis_kafka_denied_total{", `api="Fetch"`); n != 0 {
		t.Errorf("brokers' sidecars refused %v Fetch requests, want 0", n)
	}
	if n := metricSum(t, brokers, "trellis_kafka_audited_total{", `api="Fetch"`, `stat_prefix="inbound:default/kafka:9092"`); n < 1 {
		t.Errorf("brokers' sidecars audited %v Fetch requests of orders.paid, want at least 1", n)
	}
	if n := metricSum(t, brokers, "trellis_kafka_audited_total{", `api="Produce"`); n != 0 {
		t.Errorf("brokers' sidecars audited %v Produce requests, want 0 (the audit names the consumer's fetches)", n)
	}
}

func natsThroughMesh(t *testing.T, clients map[string]*msgClient, broker *meshProxy, n int) {
	connect := func(c *msgClient, opts ...natsgo.Option) *natsgo.Conn {
		nc, err := natsgo.Connect(c.nats, append([]natsgo.Option{natsgo.Name(c.name)}, opts...)...)
		if err != nil {
			t.Fatalf("%s: connect %s: %v", c.name, c.nats, err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	sub := connect(clients["consumer"])
	var got, intruded atomic.Int64
	if _, err := sub.Subscribe("orders.>", func(m *natsgo.Msg) {
		if string(m.Data) == "intruder" {
			intruded.Add(1)
		}
		got.Add(1)
	}); err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}

	asyncErr := make(chan error, 4)
	in := connect(clients["intruder"], natsgo.ErrorHandler(func(_ *natsgo.Conn, _ *natsgo.Subscription, err error) {
		select {
		case asyncErr <- err:
		default:
		}
	}))
	if err := in.Publish("orders.nats", []byte("intruder")); err != nil {
		t.Fatal(err)
	}
	if err := in.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-asyncErr:
		if !errors.Is(err, natsgo.ErrPermissionViolation) || !strings.Contains(err.Error(), `Publish to "orders.nats"`) {
			t.Fatalf("intruder's publish: %v, want a permissions violation for publish to \"orders.nats\"", err)
		}
		t.Logf("intruder's publish refused: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("intruder's publish: no permissions violation within 10s")
	}

	pub := connect(clients["producer"])
	for i := range n {
		if err := pub.Publish("orders.nats", fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, "every NATS message to arrive", func() (bool, string) {
		return got.Load() >= int64(n), fmt.Sprintf("%d of %d", got.Load(), n)
	})
	if g, i := got.Load(), intruded.Load(); g != int64(n) || i != 0 {
		t.Errorf("received %d messages (%d from the intruder), want %d (none)", g, i, n)
	}

	nf := float64(n)
	waitMetric(t, "producer's sidecar published", nf, []*meshProxy{clients["producer"].proxy},
		"trellis_nats_messages_total{", `direction="publish"`, `stat_prefix="outbound:default/nats:4222"`, `subject="orders.nats"`)
	waitMetric(t, "broker's sidecar published", nf, []*meshProxy{broker},
		"trellis_nats_messages_total{", `direction="publish"`, `stat_prefix="inbound:default/nats:4222"`, `subject="orders.nats"`)
	waitMetric(t, "consumer's sidecar delivered", nf, []*meshProxy{clients["consumer"].proxy},
		"trellis_nats_messages_total{", `direction="deliver"`, `stat_prefix="outbound:default/nats:4222"`, `subject="orders.>"`)
	waitMetric(t, "broker's sidecar refused", 1, []*meshProxy{broker},
		"trellis_nats_denied_total{", `operation="publish"`, `stat_prefix="inbound:default/nats:4222"`, `subject="orders.nats"`)
	waitMetric(t, "broker's sidecar audited the consumer's subscription", 1, []*meshProxy{broker},
		"trellis_nats_audited_total{", `operation="subscribe"`, `stat_prefix="inbound:default/nats:4222"`, `subject="orders.>"`)
}
