package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/trellis-mesh/trellis/internal/bridge/brokertest"
)

// The bridge through the mesh (issue 7, docs/bridge.md "Through the mesh:
// the bridge's identity at the broker"): the publisher's Dataplane has
// the bridge and an outbound to the kafka Service, and the Broker's
// address is that outbound's local port, so the bridge's Kafka connection
// leaves through its own sidecar with mutual TLS and the publisher's
// identity, and the brokers' sidecars enforce the topic policy against
// it: orders.allowed may be produced to; orders.denied may not even be
// described (the client learns of the refusal from the Metadata answer);
// orders.readonly may be consumed (so described) but not produced to (the Produce
// request is refused). The subscriber consumes orders.allowed and
// dead-letters to orders.dead, through its own sidecar likewise.
const bridgeMeshResources = `apiVersion: trellis.dev/v1alpha1
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
metadata: {name: subscriber}
spec: {selector: {app: subscriber}, ports: [{port: 80}]}
---
apiVersion: trellis.dev/v1alpha1
kind: AccessPolicy
metadata: {name: kafka-publishers}
spec:
  targetRefs: [{group: "", kind: Service, name: kafka}]
  action: ALLOW
  rules:
  - from: [{service: publisher}]
    to:
    - kafka: {topics: [orders.allowed], operations: [produce]}
    - kafka: {topics: [orders.readonly], operations: [consume]}
  - from: [{service: subscriber}]
    to:
    - kafka: {topics: [orders.allowed], operations: [consume]}
    - kafka: {topics: [orders.dead], operations: [produce]}
`

// TestBridgeMesh: an HTTP-only publisher POSTs to its bridge; the bridge
// reaches a kfake cluster of two brokers (each behind its own sidecar)
// through its sidecar's kafka outbound (broker ports and address rewrite)
// over mutual TLS. Publishes to orders.allowed answer 200 and every one
// reaches the broker (read back with a native franz-go consumer, the
// CloudEvent ids intact) through both brokers' sidecars; publishes to
// orders.denied and orders.readonly answer 502 whose JSON names
// TOPIC_AUTHORIZATION_FAILED, nothing of them reaches the broker, the
// brokers' sidecars count each refusal (on Metadata and on Produce) and
// log it with the publisher's SPIFFE ID, and publishing to
// orders.allowed still works afterwards. A Subscription delivers
// orders.allowed to an HTTP-only subscriber whose bridge consumes (a
// consumer group: FindCoordinator and the group's APIs go through the
// rewrite) and dead-letters through its own sidecar: every record but
// one arrives, the one the subscriber always fails lands in orders.dead.
func TestBridgeMesh(t *testing.T) {
	const n = 50
	allowed, denied, readonly, dead := "orders.allowed", "orders.denied", "orders.readonly", "orders.dead"
	const failing = "allowed-7" // the subscriber answers 500 to it, always
	kc := startKfake(t, 2, allowed, denied, readonly, dead)
	app := &meshSubscriber{delivered: map[string]int{}, failing: failing}
	appSrv := httptest.NewServer(app)
	t.Cleanup(appSrv.Close)
	cp := startControl(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0", "--name", "cp-1")
	dir := t.TempDir()

	// broker-0 and broker-1 inbounds; publisher's bridge and kafka
	// bootstrap; subscriber's inbound, bridge and kafka bootstrap.
	ports := freePorts(t, 7)
	brokerBase, subBrokerBase := freeRange(t, 2), freeRange(t, 2)
	for subBrokerBase >= brokerBase-1 && subBrokerBase <= brokerBase+1 {
		subBrokerBase = freeRange(t, 2)
	}
	brokerAddrs := kc.ListenAddrs()
	brokerDoc := func(id int) string {
		return fmt.Sprintf(`apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: broker-%d, labels: {app: brokers}}
spec:
  address: 127.0.0.1
  inbound:
  - {port: %d, servicePort: 9092, appPort: %d, kafkaBrokerID: %d}
`, id, ports[id], portOf(t, brokerAddrs[id]), id)
	}
	// The publisher's Dataplane: the bridge, and an outbound to the kafka
	// Service whose local port the Broker names.
	pubDoc := fmt.Sprintf(`apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: publisher-1, labels: {app: publisher}}
spec:
  address: 127.0.0.1
  bridge: {port: %d}
  outbound:
  - {service: kafka, localPort: %d, kafka: {brokerPortBase: %d, maxBrokerID: 1}}
`, ports[2], ports[3], brokerBase)
	brokerRes := fmt.Sprintf(`apiVersion: trellis.dev/v1alpha1
kind: Broker
metadata: {name: kafka}
spec: {type: kafka, addresses: ["127.0.0.1:%d"]}
`, ports[3])
	// The subscriber's Dataplane adds an inbound for the deliveries. The
	// sidecars share one loopback here, so its outbound has other ports
	// than the publisher's, and a Broker of its own names them (on hosts of
	// their own both would use one Broker and one localPort).
	subDoc := fmt.Sprintf(`apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: subscriber-1, labels: {app: subscriber}}
spec:
  address: 127.0.0.1
  inbound: [{port: %d, servicePort: 80, appPort: %d}]
  bridge: {port: %d}
  outbound:
  - {service: kafka, localPort: %d, kafka: {brokerPortBase: %d, maxBrokerID: 1}}
`, ports[4], portOf(t, strings.TrimPrefix(appSrv.URL, "http://")), ports[5], ports[6], subBrokerBase)
	subRes := fmt.Sprintf(`apiVersion: trellis.dev/v1alpha1
kind: Broker
metadata: {name: kafka-subscriber}
spec: {type: kafka, addresses: ["127.0.0.1:%d"]}
---
apiVersion: trellis.dev/v1alpha1
kind: Subscription
metadata: {name: orders}
spec:
  brokerRef: {name: kafka-subscriber}
  topic: %s
  consumerGroup: billing
  targetRef: {name: subscriber}
  path: /events
  concurrency: 4
  retry: {maxDeliveries: 3, backoff: {base: 5ms, max: 20ms}}
  deadLetter: {topic: %s}
`, ports[6], allowed, dead)
	docs := []string{bridgeMeshResources, brokerRes, subRes, brokerDoc(0), brokerDoc(1), pubDoc, subDoc}
	applyYAML(t, cp.cfg, dir, "mesh.yaml", strings.Join(docs, "---\n"))
	tokens := map[string]string{}
	for _, svc := range []string{"brokers", "publisher", "subscriber"} {
		tok := strings.TrimSpace(mustCLI(t, cp.cfg, "token", "create", "--mesh", "default", "--service", svc))
		tokens[svc] = writeFile(t, dir, svc+".token", tok+"\n")
	}
	brokers := []*meshProxy{
		startProxy(t, cp, writeFile(t, dir, "broker-0.yaml", brokerDoc(0)), tokens["brokers"]),
		startProxy(t, cp, writeFile(t, dir, "broker-1.yaml", brokerDoc(1)), tokens["brokers"]),
	}
	pub := startProxy(t, cp, writeFile(t, dir, "publisher-1.yaml", pubDoc), tokens["publisher"])
	sub := startProxy(t, cp, writeFile(t, dir, "subscriber-1.yaml", subDoc), tokens["subscriber"])
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("publisher-1 stderr:\n%s\nsubscriber-1 stderr:\n%s\nbroker-0 stderr:\n%s\nbroker-1 stderr:\n%s",
				tail(pub.p.stderr()), tail(sub.p.stderr()), tail(brokers[0].p.stderr()), tail(brokers[1].p.stderr()))
		}
	})
	for i, b := range brokers {
		waitReady(t, fmt.Sprintf("broker-%d", i), b, 30*time.Second)
	}
	waitReady(t, "publisher-1", pub, 30*time.Second)
	waitReady(t, "subscriber-1", sub, 30*time.Second)
	waitListening(t, "the publisher's bridge and kafka outbound ports",
		fmt.Sprintf("127.0.0.1:%d", ports[2]), fmt.Sprintf("127.0.0.1:%d", ports[3]),
		fmt.Sprintf("127.0.0.1:%d", brokerBase), fmt.Sprintf("127.0.0.1:%d", brokerBase+1))

	pubURL := fmt.Sprintf("http://127.0.0.1:%d/publish/kafka/", ports[2])
	hc := &http.Client{Timeout: 20 * time.Second}
	ids := map[string]bool{}
	for i := range n {
		id := fmt.Sprintf("allowed-%d", i)
		code, body := publishEvent(t, hc, pubURL+allowed, id, i)
		if code != http.StatusOK {
			t.Fatalf("publish %s to %s: %d %s", id, allowed, code, body)
		}
		ids[id] = true
	}

	// The refused topics: a 502 naming the authorization failure.
	for _, topic := range []string{denied, readonly} {
		code, body := publishEvent(t, hc, pubURL+topic, "refused-"+topic, 0)
		var answer map[string]string
		if err := json.Unmarshal([]byte(body), &answer); err != nil {
			t.Fatalf("publish to %s: %d, body not JSON: %q", topic, code, body)
		}
		if code != http.StatusBadGateway || !strings.Contains(answer["cause"], "TOPIC_AUTHORIZATION_FAILED") ||
			!strings.Contains(answer["cause"], "not authorized") || answer["broker"] != "kafka" || answer["topic"] != topic {
			t.Fatalf("publish to %s: %d %s; want 502 with broker, topic and a cause naming TOPIC_AUTHORIZATION_FAILED", topic, code, body)
		}
		t.Logf("publish to %s refused: %d %s", topic, code, strings.TrimSpace(body))
	}

	// The producer is not poisoned by the refusal.
	if code, body := publishEvent(t, hc, pubURL+allowed, "allowed-after", n); code != http.StatusOK {
		t.Fatalf("publish to %s after the refusal: %d %s", allowed, code, body)
	}
	ids["allowed-after"] = true

	// Everything acknowledged is on the broker, read with a native consumer
	// straight from kfake; nothing of the refused topics is.
	for _, r := range readRecords(t, brokerAddrs, len(ids), allowed, denied, readonly) {
		if id := header(r, "ce_id"); r.Topic != allowed || !ids[id] {
			t.Errorf("unexpected record on the broker: %s/%d@%d id %q", r.Topic, r.Partition, r.Offset, id)
		}
	}

	// The subscriber got every record but the failing one, which its
	// sidecar dead-lettered, through the mesh too.
	poll(t, 30*time.Second, "the subscriber's deliveries", func() (bool, string) {
		app.mu.Lock()
		defer app.mu.Unlock()
		return len(app.delivered) == len(ids)-1 && app.failed >= 3, fmt.Sprintf("delivered %d of %d, %d failed attempts", len(app.delivered), len(ids)-1, app.failed)
	})
	app.mu.Lock()
	for id := range ids {
		if id != failing && app.delivered[id] == 0 {
			t.Errorf("%s not delivered to the subscriber", id)
		}
	}
	app.mu.Unlock()
	dl := readRecords(t, brokerAddrs, 1, dead)[0]
	if id, reason := header(dl, "ce_id"), header(dl, "ce_deadletterreason"); id != failing || !strings.Contains(reason, "500") {
		t.Errorf("dead letter: id %q reason %q, want %q and the 500", id, reason, failing)
	}

	// The traffic went through both sidecars: the publisher's outbound
	// and the brokers' inbounds counted every record of orders.allowed;
	// the brokers' sidecars refused the publisher, by its identity.
	nRec := float64(len(ids))
	waitMetric(t, "publisher's sidecar records of "+allowed, nRec, []*meshProxy{pub}, "trellis_kafka_topic_records_total{",
		`direction="produced"`, `stat_prefix="outbound:default/kafka:9092"`, `topic="`+allowed+`"`)
	waitMetric(t, "brokers' sidecars records of "+allowed, nRec, brokers, "trellis_kafka_topic_records_total{",
		`direction="produced"`, `stat_prefix="inbound:default/kafka:9092"`, `topic="`+allowed+`"`)
	for _, topic := range []string{denied, readonly} {
		if n := metricSum(t, brokers, "trellis_kafka_topic_records_total{", `topic="`+topic+`"`); n != 0 {
			t.Errorf("brokers' sidecars counted %v records of %s, want 0", n, topic)
		}
		waitMetric(t, "publisher's refused publishes to "+topic, 1, []*meshProxy{pub},
			"trellis_bridge_published_total{", `broker="kafka"`, `topic="`+topic+`"`, `result="refused"`)
	}
	// The publisher may not describe orders.denied either, so franz-go
	// learns of the refusal from the Metadata answer and fails the record
	// without a Produce request: the refusal is counted on Metadata.
	if n := metricSum(t, brokers, "trellis_kafka_denied_total{", `api="Metadata"`, `reason="topic"`, `stat_prefix="inbound:default/kafka:9092"`); n < 1 {
		t.Errorf("brokers' sidecars counted %v refused Metadata requests, want at least 1", n)
	}
	// orders.readonly is described, so the Produce request is sent and
	// refused.
	if n := metricSum(t, brokers, "trellis_kafka_denied_total{", `api="Produce"`, `reason="topic"`, `stat_prefix="inbound:default/kafka:9092"`); n < 1 {
		t.Errorf("brokers' sidecars counted %v refused Produce requests, want at least 1", n)
	}
	waitMetric(t, "brokers' sidecars dead letters", 1, brokers, "trellis_kafka_topic_records_total{",
		`direction="produced"`, `stat_prefix="inbound:default/kafka:9092"`, `topic="`+dead+`"`)
	if n := metricSum(t, []*meshProxy{sub}, "trellis_kafka_topic_records_total{", `direction="fetched"`,
		`stat_prefix="outbound:default/kafka:9092"`, `topic="`+allowed+`"`); n < nRec {
		t.Errorf("subscriber's sidecar fetched %v records of %s, want at least %v", n, allowed, nRec)
	}
	waitMetric(t, "publisher's ok publishes", nRec, []*meshProxy{pub},
		"trellis_bridge_published_total{", `broker="kafka"`, `topic="`+allowed+`"`, `result="ok"`)
	for _, want := range []string{"api=Metadata", "api=Produce"} {
		poll(t, 10*time.Second, "a broker sidecar's log of the refused "+want+" naming the publisher", func() (bool, string) {
			for _, b := range brokers {
				for l := range strings.Lines(b.p.stderr()) {
					if strings.Contains(l, "refused by the topic policy") && strings.Contains(l, want) &&
						strings.Contains(l, "spiffe_id=spiffe://") && strings.Contains(l, "/default/publisher") {
						return true, ""
					}
				}
			}
			return false, "no such line"
		})
	}
}

// publishEvent POSTs a binary-mode CloudEvent with id to url and returns
// the answer's status and body.
func publishEvent(t *testing.T, c *http.Client, url, id string, i int) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(fmt.Sprintf("order %d", i)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Ce-Specversion", "1.0")
	req.Header.Set("Ce-Id", id)
	req.Header.Set("Ce-Source", "/e2e/publisher")
	req.Header.Set("Ce-Type", "order.created")
	req.Header.Set("Content-Type", "text/plain")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("publish %s: %v", id, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("publish %s: reading the answer: %v", id, err)
	}
	return resp.StatusCode, string(b)
}

// meshSubscriber is TestBridgeMesh's HTTP-only subscriber: it counts
// deliveries by event id and answers 500 to failing.
type meshSubscriber struct {
	failing   string
	mu        sync.Mutex
	delivered map[string]int
	failed    int
}

func (a *meshSubscriber) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if id := r.Header.Get("Ce-Id"); id == a.failing {
		a.failed++
		w.WriteHeader(http.StatusInternalServerError)
	} else {
		a.delivered[id]++
	}
}

// readRecords reads want records of topics from the brokers at seeds
// directly (not through the mesh), from the start.
func readRecords(t *testing.T, seeds []string, want int, topics ...string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %v before the deadline", len(recs), want, topics)
		}
		for _, e := range fs.Errors() {
			t.Fatalf("fetch %s/%d: %v", e.Topic, e.Partition, e.Err)
		}
		recs = append(recs, fs.Records()...)
	}
	return recs
}

// header is a record header's value.
func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// bridgeMeshNATSResources: the nats Service in the mesh, and publishing
// to payments.> refused to the publisher (DENY: everything else allowed,
// JetStream's API subjects included).
const bridgeMeshNATSResources = `apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata: {name: default}
spec: {mtls: {mode: STRICT}}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: nats}
spec: {selector: {app: nats}, ports: [{port: 4222, protocol: nats}]}
---
apiVersion: trellis.dev/v1alpha1
kind: AccessPolicy
metadata: {name: no-payments-from-publisher}
spec:
  targetRefs: [{group: "", kind: Service, name: nats}]
  action: DENY
  rules:
  - from: [{service: publisher}]
    to: [{nats: {subjects: ["payments.>"], operations: [publish]}}]
`

// TestBridgeMeshNATS: the same pattern with NATS JetStream: the
// publisher's bridge reaches a nats-server behind its sidecar through its
// own sidecar's nats outbound. Publishes to orders.created answer 200 and
// reach a native subscriber of the server; a publish to payments.created
// answers 502 at once (not a 504 after the publish timeout) quoting the
// filter's permissions violation, reaches nobody, and the server's sidecar
// counts it by subject and logs it with the publisher's SPIFFE ID.
func TestBridgeMeshNATS(t *testing.T) {
	ns := brokertest.StartNATS(t, true)
	got := make(chan *natsgo.Msg, 16)
	direct, err := natsgo.Connect(ns.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(direct.Close)
	// A stream for both subjects (the bridge would make one on first use,
	// but the subscriber below would answer JetStream's publish for want
	// of a stream), and a subscriber of both on the server itself.
	js, err := jetstream.New(direct)
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if _, err := js.CreateStream(sctx, jetstream.StreamConfig{Name: "E2E", Subjects: []string{"orders.>", "payments.>"}}); err != nil {
		t.Fatal(err)
	}
	for _, subj := range []string{"orders.>", "payments.>"} {
		if _, err := direct.ChanSubscribe(subj, got); err != nil {
			t.Fatal(err)
		}
	}
	if err := direct.Flush(); err != nil {
		t.Fatal(err)
	}

	cp := startControl(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0", "--name", "cp-1")
	dir := t.TempDir()
	ports := freePorts(t, 3) // nats-0's inbound; the publisher's bridge and nats outbound
	natsDoc := fmt.Sprintf(`apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: nats-0, labels: {app: nats}}
spec:
  address: 127.0.0.1
  inbound: [{port: %d, servicePort: 4222, appPort: %d}]
`, ports[0], portOf(t, strings.TrimPrefix(ns.URL, "nats://")))
	pubDoc := fmt.Sprintf(`apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: publisher-1, labels: {app: publisher}}
spec:
  address: 127.0.0.1
  bridge: {port: %d}
  outbound: [{service: nats, localPort: %d}]
`, ports[1], ports[2])
	brokerRes := fmt.Sprintf(`apiVersion: trellis.dev/v1alpha1
kind: Broker
metadata: {name: nats}
spec: {type: nats, addresses: ["nats://127.0.0.1:%d"], nats: {jetStream: true}}
`, ports[2])
	applyYAML(t, cp.cfg, dir, "mesh.yaml", strings.Join([]string{bridgeMeshNATSResources, brokerRes, natsDoc, pubDoc}, "---\n"))
	tokens := map[string]string{}
	for _, svc := range []string{"nats", "publisher"} {
		tok := strings.TrimSpace(mustCLI(t, cp.cfg, "token", "create", "--mesh", "default", "--service", svc))
		tokens[svc] = writeFile(t, dir, svc+".token", tok+"\n")
	}
	server := startProxy(t, cp, writeFile(t, dir, "nats-0.yaml", natsDoc), tokens["nats"])
	pub := startProxy(t, cp, writeFile(t, dir, "publisher-1.yaml", pubDoc), tokens["publisher"])
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("publisher-1 stderr:\n%s\nnats-0 stderr:\n%s", tail(pub.p.stderr()), tail(server.p.stderr()))
		}
	})
	waitReady(t, "nats-0", server, 30*time.Second)
	waitReady(t, "publisher-1", pub, 30*time.Second)
	waitListening(t, "the publisher's bridge and nats outbound ports",
		fmt.Sprintf("127.0.0.1:%d", ports[1]), fmt.Sprintf("127.0.0.1:%d", ports[2]))

	pubURL := fmt.Sprintf("http://127.0.0.1:%d/publish/nats/", ports[1])
	hc := &http.Client{Timeout: 20 * time.Second}
	// The bridge's connection to the server through the sidecar may still
	// be coming up (its first dial can precede the outbound listener):
	// the first publish is retried while the bridge answers 5xx.
	poll(t, 30*time.Second, "the bridge's first publish through the mesh", func() (bool, string) {
		start := time.Now()
		code, body := publishEvent(t, hc, pubURL+"orders.created", "order-0", 0)
		if code != http.StatusOK {
			t.Logf("first publish: %d %s in %v", code, strings.TrimSpace(body), time.Since(start).Round(time.Millisecond))
		}
		return code == http.StatusOK, fmt.Sprint(code, " ", body)
	})
	for i, tc := range []struct{ subject, id string }{
		{"orders.created", "order-1"}, {"payments.created", "payment-1"}, {"orders.created", "order-2"},
	} {
		start := time.Now()
		code, body := publishEvent(t, hc, pubURL+tc.subject, tc.id, i)
		took := time.Since(start)
		if tc.subject == "orders.created" {
			if code != http.StatusOK {
				t.Fatalf("publish %s to %s: %d %s", tc.id, tc.subject, code, body)
			}
			continue
		}
		if code != http.StatusBadGateway || !strings.Contains(body, `Permissions Violation for Publish to \"payments.created\"`) ||
			!strings.Contains(body, "not authorized") {
			t.Fatalf("publish %s to %s: %d %s in %v; want 502 quoting the permissions violation", tc.id, tc.subject, code, body, took)
		}
		t.Logf("publish to %s refused in %v: %d %s", tc.subject, took.Round(time.Millisecond), code, strings.TrimSpace(body))
	}

	// The server got the orders (the JetStream acknowledgements say the
	// stream stored them) and nothing on payments.
	seen := map[string]string{}
	deadline := time.After(15 * time.Second)
	for seen["order-0"] == "" || seen["order-1"] == "" || seen["order-2"] == "" {
		select {
		case m := <-got:
			for k, v := range m.Header {
				if strings.EqualFold(k, "Ce-Id") && len(v) > 0 {
					seen[v[0]] = m.Subject // the bridge writes Ce-id
				}
			}
		case <-deadline:
			t.Fatalf("the server's subscriber saw %v, want order-0, order-1 and order-2", seen)
		}
	}
	if s, ok := seen["payment-1"]; ok {
		t.Errorf("the refused event reached the server on %s", s)
	}

	waitMetric(t, "nats-0's sidecar published orders", 3, []*meshProxy{server}, "trellis_nats_messages_total{",
		`direction="publish"`, `stat_prefix="inbound:default/nats:4222"`, `subject="orders.created"`)
	waitMetric(t, "nats-0's sidecar refused payments", 1, []*meshProxy{server}, "trellis_nats_denied_total{",
		`operation="publish"`, `stat_prefix="inbound:default/nats:4222"`, `subject="payments.created"`)
	waitMetric(t, "publisher's refused publishes", 1, []*meshProxy{pub},
		"trellis_bridge_published_total{", `broker="nats"`, `topic="payments.created"`, `result="refused"`)
	poll(t, 10*time.Second, "nats-0's log of the refusal naming the publisher", func() (bool, string) {
		for l := range strings.Lines(server.p.stderr()) {
			if strings.Contains(l, "payments.created") && strings.Contains(l, "spiffe_id=spiffe://") && strings.Contains(l, "/default/publisher") {
				return true, ""
			}
		}
		return false, "no such line"
	})
}
