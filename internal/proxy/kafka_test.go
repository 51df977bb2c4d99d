package proxy_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/trellis-mesh/trellis/internal/proxy"
	"github.com/trellis-mesh/trellis/internal/testutil/certs"
	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

// Kafka tests run the real franz-go client against kfake, franz-go's
// in-process cluster that speaks the real wire protocol (no Kafka server
// can be installed on the build machines), through a real proxy.

// kafkaCluster starts a kfake cluster of n brokers with topics seeded (3
// partitions each) and counts the connections its brokers accept.
func kafkaCluster(t *testing.T, n int, topics ...string) (*kfake.Cluster, *atomic.Int64) {
	t.Helper()
	var accepted atomic.Int64
	c, err := kfake.NewCluster(kfake.NumBrokers(n), kfake.SeedTopics(3, topics...),
		kfake.ListenFn(func(network, address string) (net.Listener, error) {
			ln, err := net.Listen(network, address)
			if err != nil {
				return nil, err
			}
			return &countingListener{Listener: ln, n: &accepted}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, &accepted
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// kafkaBootstrap is a proxy with one listener per broker (kafka-<id>),
// each a kafka_broker (+ optional extra filters) and tcp_proxy to its
// broker. With .Listen set, the listeners bind those addresses and the
// brokers' addresses are rewritten to them.
const kafkaBootstrap = `
static_resources:
  listeners:
{{- range $i, $b := .Brokers}}
  - name: kafka-{{$i}}
    address: {{addr (index $.Listen $i)}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.kafka_broker
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.kafka_broker.v3.KafkaBroker
          stat_prefix: kafka
          {{- with $.Rules}}
          id_based_broker_address_rewrite_spec:
            rules:
            {{- range .}}
            - {id: {{.ID}}, host: "{{.Host}}", port: {{.Port}}}
            {{- end}}
          {{- end}}
          {{- with $.Denied}}
          api_keys_denied: {{.}}
          {{- end}}
      {{- with $.Extra}}
{{.}}
      {{- end}}
      - name: envoy.filters.network.tcp_proxy
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: kafka-{{$i}}, cluster: broker-{{$i}}}
{{- end}}
  clusters:
{{- range $i, $b := .Brokers}}
  - name: broker-{{$i}}
    load_assignment: {cluster_name: broker-{{$i}}, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr $b}}}}]}]}
{{- end}}
`

type kafkaConfig struct {
	Brokers []string
	Listen  []string
	Rewrite bool
	Rules   []kafkaRule
	Denied  string // YAML list of API keys
	Extra   string // filters between kafka_broker and tcp_proxy
}

type kafkaRule struct {
	ID   int
	Host string
	Port string
}

// startKafkaProxy starts the proxy in front of c: bound first on port 0,
// then, with kc.Rewrite, re-applied with the bound addresses in the
// rewrite rules (the sockets stay). It returns the proxy and the listener
// addresses by broker id.
func startKafkaProxy(t *testing.T, c *kfake.Cluster, kc kafkaConfig) (*proxy.Proxy, []string) {
	t.Helper()
	kc.Brokers = c.ListenAddrs()
	kc.Listen = make([]string, len(kc.Brokers))
	for i := range kc.Listen {
		kc.Listen[i] = "127.0.0.1:0"
	}
	p := startProxy(t, kafkaBootstrap, kc)
	for i := range kc.Listen {
		kc.Listen[i] = p.ListenerAddrs()["kafka-"+strconv.Itoa(i)]
		host, port, _ := net.SplitHostPort(kc.Listen[i])
		kc.Rules = append(kc.Rules, kafkaRule{ID: i, Host: host, Port: port})
	}
	if kc.Rewrite {
		if err := apply(t, p, kafkaBootstrap, kc); err != nil {
			t.Fatal(err)
		}
	}
	return p, kc.Listen
}

func kafkaClient(t *testing.T, seed string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seed), kgo.MetadataMinAge(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// kafkaMetric sums the series of a metric family whose labels include
// want.
func kafkaMetric(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

// produce sends n records to each topic and waits for every ack.
func produce(t *testing.T, cl *kgo.Client, n int, topics ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for _, topic := range topics {
		for i := range n {
			recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i)), Value: []byte(fmt.Sprintf("%s-%d", topic, i))})
		}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// consume polls until want records per topic arrived; it fails past a
// deadline or on more records than sent.
func consume(t *testing.T, cl *kgo.Client, want map[string]int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := map[string]int{}
	total, wantTotal := 0, 0
	for _, n := range want {
		wantTotal += n
	}
	for total < wantTotal {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %v, want %v: %v", got, want, ctx.Err())
		}
		for _, e := range fs.Errors() {
			t.Fatalf("fetch %s[%d]: %v", e.Topic, e.Partition, e.Err)
		}
		fs.EachRecord(func(r *kgo.Record) { got[r.Topic]++; total++ })
	}
	for topic, n := range want {
		if got[topic] != n {
			t.Errorf("consumed %d records of %s, want %d", got[topic], topic, n)
		}
	}
}

// TestKafkaProxy: a producer and a consumer reach a three-broker cluster
// only through the proxy (the brokers' advertised addresses are rewritten
// to the proxy's listeners); every record sent is received, and the
// per-topic metrics count them.
func TestKafkaProxy(t *testing.T) {
	c, accepted := kafkaCluster(t, 3, "orders", "payments")
	p, listen := startKafkaProxy(t, c, kafkaConfig{Rewrite: true})

	cl := kafkaClient(t, listen[0])
	meta, err := kmsg.NewPtrMetadataRequest().RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(meta.Brokers) != 3 {
		t.Fatalf("metadata lists %d brokers, want 3", len(meta.Brokers))
	}
	for _, b := range meta.Brokers {
		hp := net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
		if hp != listen[b.NodeID] {
			t.Errorf("broker %d is advertised at %s, want the proxy's %s", b.NodeID, hp, listen[b.NodeID])
		}
	}

	const n = 200
	produce(t, cl, n, "orders", "payments")
	consumer := kafkaClient(t, listen[1], kgo.ConsumeTopics("orders", "payments"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	consume(t, consumer, map[string]int{"orders": n, "payments": n})
	cl.Close()
	consumer.Close()

	reg := p.Metrics().Prom
	for _, topic := range []string{"orders", "payments"} {
		for _, dir := range []string{"produced", "fetched"} {
			got := kafkaMetric(t, reg, "trellis_kafka_topic_records_total", map[string]string{"stat_prefix": "kafka", "topic": topic, "direction": dir})
			if got != n {
				dumpKafkaTopics(t, reg)
				t.Errorf("trellis_kafka_topic_records_total{topic=%q,direction=%q} = %v, want %d", topic, dir, got, n)
			}
			if b := kafkaMetric(t, reg, "trellis_kafka_topic_bytes_total", map[string]string{"topic": topic, "direction": dir}); b <= 0 {
				t.Errorf("trellis_kafka_topic_bytes_total{topic=%q,direction=%q} = %v", topic, dir, b)
			}
		}
	}
	for _, api := range []string{"Produce", "Fetch", "Metadata", "ApiVersions", "FindCoordinator"} {
		if api == "FindCoordinator" {
			continue // no group here
		}
		req := kafkaMetric(t, reg, "trellis_kafka_requests_total", map[string]string{"api": api})
		resp := kafkaMetric(t, reg, "trellis_kafka_request_duration_seconds", map[string]string{"api": api})
		if req == 0 || resp == 0 {
			t.Errorf("%s: %v requests, %v timed responses; want some", api, req, resp)
		}
	}
	// Every connection the brokers accepted came from the proxy.
	if up := kafkaMetric(t, reg, "trellis_tcp_connections_total", nil); float64(accepted.Load()) > up {
		t.Errorf("brokers accepted %d connections, the proxy opened %v: a client went around the proxy", accepted.Load(), up)
	}
}

// TestKafkaGroupCoordinator: a consumer group works through the proxy:
// FindCoordinator answers are rewritten too.
func TestKafkaGroupCoordinator(t *testing.T) {
	c, _ := kafkaCluster(t, 3, "events")
	p, listen := startKafkaProxy(t, c, kafkaConfig{Rewrite: true})
	produce(t, kafkaClient(t, listen[2]), 50, "events")
	consumer := kafkaClient(t, listen[0], kgo.ConsumerGroup("g1"), kgo.ConsumeTopics("events"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	consume(t, consumer, map[string]int{"events": 50})
	fc, err := kmsg.NewPtrFindCoordinatorRequest().RequestWith(context.Background(), consumer)
	if err != nil {
		t.Fatal(err)
	}
	hp := net.JoinHostPort(fc.Host, strconv.Itoa(int(fc.Port)))
	if len(fc.Coordinators) > 0 {
		hp = net.JoinHostPort(fc.Coordinators[0].Host, strconv.Itoa(int(fc.Coordinators[0].Port)))
	}
	if !contains(listen, hp) {
		t.Errorf("coordinator advertised at %s, not a proxy listener %v", hp, listen)
	}
	if got := kafkaMetric(t, p.Metrics().Prom, "trellis_kafka_requests_total", map[string]string{"api": "FindCoordinator"}); got == 0 {
		t.Error("no FindCoordinator request counted")
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

const kafkaPolicy = `      - name: trellis.filters.network.kafka_policy
        typed_config:
          "@type": type.googleapis.com/xds.type.v3.TypedStruct
          type_url: type.googleapis.com/trellis.filters.network.kafka.v1.TopicPolicy
          value:
            default_action: ALLOW
            rules:
            - {action: DENY, operations: [produce, consume], topics: ["secret*"], principals: ["127.0.0.0/8"]}`

// TestKafkaTopicPolicy: the topic policy refuses produce and consume on
// "secret*" with TOPIC_AUTHORIZATION_FAILED while other topics, even in
// the same requests, go through.
func TestKafkaTopicPolicy(t *testing.T) {
	c, _ := kafkaCluster(t, 1, "orders", "secret-a")
	p, listen := startKafkaProxy(t, c, kafkaConfig{Rewrite: true, Extra: kafkaPolicy})
	cl := kafkaClient(t, listen[0], kgo.ProducerLinger(50*time.Millisecond))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := map[string]error{}
	var mu sync.Mutex
	for _, topic := range []string{"orders", "secret-a"} {
		for i := range 10 {
			wg.Add(1)
			cl.Produce(ctx, &kgo.Record{Topic: topic, Value: []byte(strconv.Itoa(i))}, func(_ *kgo.Record, err error) {
				defer wg.Done()
				mu.Lock()
				defer mu.Unlock()
				if errs[topic] == nil {
					errs[topic] = err
				}
			})
		}
	}
	wg.Wait()
	if errs["orders"] != nil {
		t.Errorf("produce to orders: %v", errs["orders"])
	}
	if !errors.Is(errs["secret-a"], kerr.TopicAuthorizationFailed) {
		t.Errorf("produce to secret-a: %v, want TOPIC_AUTHORIZATION_FAILED", errs["secret-a"])
	}

	consumer := kafkaClient(t, listen[0], kgo.ConsumeTopics("secret-a"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for {
		fs := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("the consumer of secret-a never saw an authorization error")
		}
		if e := fs.Errors(); len(e) > 0 {
			if !errors.Is(e[0].Err, kerr.TopicAuthorizationFailed) {
				t.Fatalf("fetch error %v, want TOPIC_AUTHORIZATION_FAILED", e[0].Err)
			}
			break
		}
		if fs.NumRecords() > 0 {
			t.Fatal("the consumer got records of secret-a")
		}
	}
	reg := p.Metrics().Prom
	for _, api := range []string{"Produce", "Fetch"} {
		if got := kafkaMetric(t, reg, "trellis_kafka_denied_total", map[string]string{"reason": "topic", "api": api}); got == 0 {
			t.Errorf("trellis_kafka_denied_total{reason=topic,api=%s} = 0", api)
		}
		if got := kafkaMetric(t, reg, "trellis_kafka_response_errors_total", map[string]string{"api": api, "error": "TOPIC_AUTHORIZATION_FAILED"}); got == 0 {
			t.Errorf("no TOPIC_AUTHORIZATION_FAILED counted for %s", api)
		}
	}
	if got := kafkaMetric(t, reg, "trellis_kafka_topic_records_total", map[string]string{"topic": "secret-a"}); got != 0 {
		t.Errorf("secret-a counted %v records", got)
	}
	if got := kafkaMetric(t, reg, "trellis_kafka_topic_records_total", map[string]string{"topic": "orders", "direction": "produced"}); got != 10 {
		t.Errorf("orders counted %v produced records, want 10", got)
	}
}

// TestKafkaAPIKeysDenied: a request with a key in api_keys_denied closes
// the connection (Envoy's semantics); the client sees an error and other
// requests still work on new connections.
func TestKafkaAPIKeysDenied(t *testing.T) {
	c, _ := kafkaCluster(t, 1, "orders")
	p, listen := startKafkaProxy(t, c, kafkaConfig{Rewrite: true, Denied: "[19]"}) // CreateTopics
	cl := kafkaClient(t, listen[0], kgo.RequestRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "created", 1, 1
	req.Topics = append(req.Topics, rt)
	if _, err := req.RequestWith(ctx, cl); err == nil {
		t.Fatal("CreateTopics went through")
	}
	if got := kafkaMetric(t, p.Metrics().Prom, "trellis_kafka_denied_total", map[string]string{"reason": "api_key", "api": "CreateTopics"}); got == 0 {
		t.Error("trellis_kafka_denied_total{reason=api_key,api=CreateTopics} = 0")
	}
	produce(t, cl, 5, "orders")
}

// TestKafkaBadFrames: an oversized or malformed frame closes that
// connection only; a client on another connection keeps working.
func TestKafkaBadFrames(t *testing.T) {
	c, _ := kafkaCluster(t, 1, "orders")
	p, listen := startKafkaProxy(t, c, kafkaConfig{Rewrite: true})
	cl := kafkaClient(t, listen[0])
	produce(t, cl, 5, "orders")
	frames := map[string][]byte{
		"oversized":    binary.BigEndian.AppendUint32(nil, 0x7fffffff),
		"negative":     binary.BigEndian.AppendUint32(nil, 0xffffffff),
		"short header": append(binary.BigEndian.AppendUint32(nil, 6), 0, 0, 0, 0, 0, 1),
		"bad produce":  append(binary.BigEndian.AppendUint32(nil, 14), 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff),
	}
	for name, frame := range frames {
		t.Run(name, func(t *testing.T) {
			conn, err := net.Dial("tcp", listen[0])
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := conn.Write(frame); err != nil {
				t.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, conn); err != nil || n != 0 {
				t.Fatalf("read %d bytes, %v; want the proxy to close the connection", n, err)
			}
		})
	}
	produce(t, cl, 5, "orders")
	reg := p.Metrics().Prom
	if got := kafkaMetric(t, reg, "trellis_kafka_protocol_errors_total", map[string]string{"reason": "frame_too_large"}); got != 1 {
		t.Errorf("frame_too_large = %v, want 1", got)
	}
	if got := kafkaMetric(t, reg, "trellis_kafka_protocol_errors_total", map[string]string{"reason": "malformed"}); got != 3 {
		t.Errorf("malformed = %v, want 3", got)
	}
}

// TestKafkaConfigErrors: bad kafka_broker and kafka_policy configurations
// are refused with the field's path.
func TestKafkaConfigErrors(t *testing.T) {
	const head = `
static_resources:
  clusters:
  - name: k
    load_assignment: {cluster_name: k, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9092}}}}]}]}
  listeners:
  - name: kafka
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
`
	const broker = `      - name: envoy.filters.network.kafka_broker
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.kafka_broker.v3.KafkaBroker, stat_prefix: k}
`
	const tcp = `      - {name: tcp, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: k, cluster: k}}
`
	policy := func(value string) string {
		return `      - name: trellis.filters.network.kafka_policy
        typed_config:
          "@type": type.googleapis.com/xds.type.v3.TypedStruct
          type_url: type.googleapis.com/trellis.filters.network.kafka.v1.TopicPolicy
          value: ` + value + "\n"
	}
	tests := []struct {
		name    string
		filters string
		want    string
	}{
		{name: "policy without broker", filters: policy("{}") + tcp,
			want: "filter_chains[0].filters[0].typed_config: kafka_policy must follow a kafka_broker filter"},
		{name: "rewrite rule", filters: `      - name: envoy.filters.network.kafka_broker
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.kafka_broker.v3.KafkaBroker
          stat_prefix: k
          id_based_broker_address_rewrite_spec: {rules: [{id: 1, host: "", port: 0}]}
` + tcp, want: "filters[0].typed_config.id_based_broker_address_rewrite_spec.rules[0].port: 0 is not a port"},
		{name: "api key", filters: `      - name: envoy.filters.network.kafka_broker
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.kafka_broker.v3.KafkaBroker, stat_prefix: k, api_keys_denied: [70000]}
` + tcp, want: "filters[0].typed_config.api_keys_denied[0]: 70000 is not an API key"},
		{name: "unknown policy field", filters: broker + policy("{rulez: []}") + tcp,
			want: `filters[1].typed_config.value: json: unknown field "rulez"`},
		{name: "bad rule", filters: broker + policy(`{rules: [{action: ALLOW, operations: [steal], topics: [t]}]}`) + tcp,
			want: `filters[1].typed_config.value.rules[0].operations[0]: "steal" is not one of`},
		{name: "frame limit", filters: broker + policy(`{max_frame_bytes: 10}`) + tcp,
			want: "filters[1].typed_config.value.max_frame_bytes: 10 is outside"},
		{name: "not before tcp_proxy", filters: broker + `      - name: hcm
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager, stat_prefix: h, route_config: {}, ` + routerFilter + `}
`, want: "filters[1]: kafka_broker needs tcp_proxy as the terminal filter"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := decode.Bootstrap([]byte(head + tc.filters))
			if err == nil {
				err = proxy.New(proxy.Options{Logger: slog.New(slog.DiscardHandler)}).Validate(b)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// kafkaMTLS is one broker behind a listener that terminates mutual TLS;
// the policy lets only spiffe://mesh.test/producer use topics.
const kafkaMTLS = `
static_resources:
  listeners:
  - name: kafka-0
    address: {{addr .Listen}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_certificates: [{certificate_chain: {filename: "{{.Cert}}"}, private_key: {filename: "{{.Key}}"}}]
            validation_context: {trusted_ca: {filename: "{{.CA}}"}}
      filters:
      - name: envoy.filters.network.kafka_broker
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.kafka_broker.v3.KafkaBroker
          stat_prefix: kafka
          id_based_broker_address_rewrite_spec: {rules: [{id: 0, host: "{{.Host}}", port: {{.Port}}}]}
      - name: trellis.filters.network.kafka_policy
        typed_config:
          "@type": type.googleapis.com/xds.type.v3.TypedStruct
          type_url: type.googleapis.com/trellis.filters.network.kafka.v1.TopicPolicy
          value:
            default_action: DENY
            rules:
            - {action: ALLOW, operations: [produce, consume], topics: ["*"], principals: ["spiffe://mesh.test/producer"]}
      - name: envoy.filters.network.tcp_proxy
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: kafka, cluster: broker}
  clusters:
  - name: broker
    load_assignment: {cluster_name: broker, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .Broker}}}}]}]}
`

// TestKafkaMutualTLS: over mutual TLS the topic policy names clients by
// the SPIFFE ID of their certificate.
func TestKafkaMutualTLS(t *testing.T) {
	c, _ := kafkaCluster(t, 1, "orders")
	ca := certs.NewCA(t, "mesh-ca")
	leaf := ca.Issue(t, certs.LeafOptions{CommonName: "kafka", DNSNames: []string{"kafka.mesh"}, URIs: []string{"spiffe://mesh.test/kafka"}})
	data := struct{ Listen, Broker, Cert, Key, CA, Host, Port string }{
		Listen: "127.0.0.1:0", Broker: c.ListenAddrs()[0], Cert: leaf.CertFile, Key: leaf.KeyFile, CA: ca.File(), Host: "127.0.0.1", Port: "1"}
	p := startProxy(t, kafkaMTLS, data)
	data.Listen = p.ListenerAddrs()["kafka-0"]
	data.Host, data.Port, _ = net.SplitHostPort(data.Listen)
	if err := apply(t, p, kafkaMTLS, data); err != nil {
		t.Fatal(err)
	}
	client := func(id string) *kgo.Client {
		cert := ca.Issue(t, certs.LeafOptions{CommonName: id, URIs: []string{"spiffe://mesh.test/" + id}})
		return kafkaClient(t, data.Listen, kgo.DialTLSConfig(&tls.Config{RootCAs: ca.Pool(), ServerName: "kafka.mesh",
			Certificates: []tls.Certificate{cert.TLS}}), kgo.RecordRetries(2))
	}
	produce(t, client("producer"), 10, "orders")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := client("other").ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("x")}).FirstErr()
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce by spiffe://mesh.test/other: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	if got := kafkaMetric(t, p.Metrics().Prom, "trellis_kafka_topic_records_total", map[string]string{"topic": "orders", "direction": "produced"}); got != 10 {
		t.Errorf("orders counted %v produced records, want 10", got)
	}
}

// TestKafkaNoAck: Produce requests with acks=0 get no response; the
// filter expects none and later responses still match their requests.
func TestKafkaNoAck(t *testing.T) {
	c, _ := kafkaCluster(t, 1, "fire")
	p, listen := startKafkaProxy(t, c, kafkaConfig{Rewrite: true})
	cl := kafkaClient(t, listen[0], kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	produce(t, cl, 20, "fire")
	produce(t, cl, 20, "fire")
	consumer := kafkaClient(t, listen[0], kgo.ConsumeTopics("fire"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	consume(t, consumer, map[string]int{"fire": 40})
	reg := p.Metrics().Prom
	if got := kafkaMetric(t, reg, "trellis_kafka_topic_records_total", map[string]string{"topic": "fire", "direction": "produced"}); got != 40 {
		t.Errorf("fire counted %v produced records, want 40", got)
	}
	if got := kafkaMetric(t, reg, "trellis_kafka_protocol_errors_total", nil); got != 0 {
		t.Errorf("%v protocol errors", got)
	}
}

func dumpKafkaTopics(t *testing.T, reg *prometheus.Registry) {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "trellis_kafka") {
			for _, m := range mf.GetMetric() {
				t.Logf("%s %v %v %v", mf.GetName(), m.GetLabel(), m.GetCounter().GetValue(), m.GetHistogram().GetSampleCount())
			}
		}
	}
}
