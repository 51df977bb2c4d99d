package proxy_test

import (
	"context"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/trellis-mesh/trellis/internal/proxy"
	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

// kafkaTrace is a kafka_trace filter with the given value.
func kafkaTrace(value string) string {
	return `      - name: trellis.filters.network.kafka_trace
        typed_config:
          "@type": type.googleapis.com/xds.type.v3.TypedStruct
          type_url: type.googleapis.com/trellis.filters.network.kafka.v1.Trace
          value: ` + value
}

var traceparentRE = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-01$`)

// fetchAll reads n records of topic straight from the broker at addr (not
// through the proxy): what the broker stored.
func fetchAll(t *testing.T, addr, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := kafkaClient(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("fetched %d records of %s, want %d: %v", len(recs), topic, n, ctx.Err())
		}
		for _, e := range fs.Errors() {
			t.Fatalf("fetch %s[%d]: %v", e.Topic, e.Partition, e.Err)
		}
		recs = append(recs, fs.Records()...)
	}
	if len(recs) != n {
		t.Fatalf("fetched %d records of %s, want %d", len(recs), topic, n)
	}
	return recs
}

func headerValues(r *kgo.Record, key string) []string {
	var vs []string
	for _, h := range r.Headers {
		if h.Key == key {
			vs = append(vs, string(h.Value))
		}
	}
	return vs
}

// TestKafkaTraceInject: with a kafka_trace filter, the real franz-go
// producer's records (idempotent, uncompressed) reach the broker with a
// new valid traceparent header and their key, value and other headers
// intact; a record that came with a traceparent keeps it; records of a
// compressed batch pass unchanged and are counted as skipped.
func TestKafkaTraceInject(t *testing.T) {
	c, _ := kafkaCluster(t, 1, "orders", "zipped")
	p, listen := startKafkaProxy(t, c, kafkaConfig{Rewrite: true,
		Extra: kafkaTrace("{inject_traceparent: true}")})

	const existing = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	cl := kafkaClient(t, listen[0], kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	recs := []*kgo.Record{
		{Topic: "orders", Key: []byte("k1"), Value: []byte("first"), Headers: []kgo.RecordHeader{{Key: "app", Value: []byte("x")}, {Key: "empty"}}},
		{Topic: "orders", Value: []byte("second")},
		{Topic: "orders", Key: []byte("k3"), Value: []byte("traced"), Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte(existing)}}},
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	zip := kafkaClient(t, listen[0], kgo.ProducerBatchCompression(kgo.GzipCompression()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	// Compressible enough that franz-go keeps the compressed batch (it
	// sends a batch uncompressed when compression does not shrink it).
	zipped := strings.Repeat("gzip ", 1000)
	if err := zip.ProduceSync(ctx, &kgo.Record{Topic: "zipped", Value: []byte(zipped)}).FirstErr(); err != nil {
		t.Fatalf("produce compressed: %v", err)
	}

	got := fetchAll(t, c.ListenAddrs()[0], "orders", 3)
	byValue := map[string]*kgo.Record{}
	for _, r := range got {
		byValue[string(r.Value)] = r
	}
	for _, want := range recs {
		r := byValue[string(want.Value)]
		if r == nil {
			t.Fatalf("record %q not stored", want.Value)
		}
		if string(r.Key) != string(want.Key) {
			t.Errorf("record %q: key %q, want %q", want.Value, r.Key, want.Key)
		}
		tps := headerValues(r, "traceparent")
		if len(tps) != 1 || !traceparentRE.MatchString(tps[0]) {
			t.Errorf("record %q: traceparent headers %q, want one valid", want.Value, tps)
		}
		for _, h := range want.Headers {
			if vs := headerValues(r, h.Key); len(vs) != 1 || vs[0] != string(h.Value) {
				t.Errorf("record %q: header %s = %q, want %q", want.Value, h.Key, vs, h.Value)
			}
		}
		if want.Value[0] == 't' && tps[0] != existing {
			t.Errorf("the producer's traceparent %s was replaced by %s", existing, tps[0])
		}
	}
	if z := fetchAll(t, c.ListenAddrs()[0], "zipped", 1)[0]; len(z.Headers) != 0 || string(z.Value) != zipped {
		t.Errorf("compressed record changed: headers %v, value of %d bytes", z.Headers, len(z.Value))
	}

	reg := p.Metrics().Prom
	for _, m := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"trellis_kafka_trace_injected_total", map[string]string{"stat_prefix": "kafka"}, 2},
		{"trellis_kafka_trace_skipped_total", map[string]string{"stat_prefix": "kafka", "reason": "present"}, 1},
		{"trellis_kafka_trace_skipped_total", map[string]string{"stat_prefix": "kafka", "reason": "compressed"}, 1},
	} {
		if got := kafkaMetric(t, reg, m.name, m.labels); got != m.want {
			t.Errorf("%s%v = %v, want %v", m.name, m.labels, got, m.want)
		}
	}
}

// TestKafkaTraceOff: without inject_traceparent (the default) records
// pass as they are.
func TestKafkaTraceOff(t *testing.T) {
	c, _ := kafkaCluster(t, 1, "orders")
	p, listen := startKafkaProxy(t, c, kafkaConfig{Rewrite: true, Extra: kafkaTrace("{}")})
	produce(t, kafkaClient(t, listen[0], kgo.ProducerBatchCompression(kgo.NoCompression())), 5, "orders")
	for _, r := range fetchAll(t, c.ListenAddrs()[0], "orders", 5) {
		if len(r.Headers) != 0 {
			t.Fatalf("record %q got headers %v", r.Value, r.Headers)
		}
	}
	if got := kafkaMetric(t, p.Metrics().Prom, "trellis_kafka_trace_injected_total", nil); got != 0 {
		t.Fatalf("trellis_kafka_trace_injected_total = %v, want 0", got)
	}
}

func TestKafkaTraceConfigErrors(t *testing.T) {
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
	for _, tc := range []struct{ name, filters, want string }{
		{"without broker", kafkaTrace("{inject_traceparent: true}\n") + tcp,
			"filter_chains[0].filters[0].typed_config: kafka_trace must follow a kafka_broker filter"},
		{"unknown field", broker + kafkaTrace("{inject: true}\n") + tcp,
			`filters[1].typed_config.value: json: unknown field "inject"`},
		{"sampling", broker + kafkaTrace("{inject_traceparent: true, sampling: 101}\n") + tcp,
			"filters[1].typed_config.value.sampling: 101 is not a percentage"},
		{"twice", broker + kafkaTrace("{}\n") + kafkaTrace("{}\n") + tcp,
			"filters[2].typed_config: a filter chain takes one kafka_trace filter"},
	} {
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
	b, err := decode.Bootstrap([]byte(head + broker + kafkaTrace("{inject_traceparent: true, sampling: 0.5}\n") + tcp))
	if err == nil {
		err = proxy.New(proxy.Options{Logger: slog.New(slog.DiscardHandler)}).Validate(b)
	}
	if err != nil {
		t.Fatalf("a valid kafka_trace: %v", err)
	}
}
