// Package bridgebench measures the HTTP bridge (issue 7): publishes per
// second and latency through a real Trellis proxy's bridge listener
// (HTTP → broker acknowledgement → 200) against the broker's own client
// publishing with the same acknowledgement (JetStream publish ack, AMQP
// publisher confirm, Kafka acks=all), for an embedded nats-server with
// JetStream, a RabbitMQ node (rabbitmq-server) and kfake. It is a test so
// it can use the brokertest starters; it runs only when asked:
//
//	go test ./bench/bridgebench -run TestBridgeBench -v -bridgebench
package bridgebench

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/trellis-mesh/trellis/internal/bridge/brokertest"
	"github.com/trellis-mesh/trellis/internal/proxy"
	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

var (
	run      = flag.Bool("bridgebench", false, "run the bridge benchmark")
	seqN     = flag.Int("bridgebench.seq", 1000, "sequential publishes per variant (latency)")
	dur      = flag.Duration("bridgebench.dur", 2*time.Second, "duration of the concurrent phase per variant (throughput)")
	workers  = flag.Int("bridgebench.workers", 16, "concurrent publishers")
	payload  = bytes.Repeat([]byte("x"), 256)
	proxyCfg = `
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources:
  listeners:
  - name: bridge
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bridge
          route_config: {name: bridge, virtual_hosts: [{name: bridge, domains: ["*"], routes: [{match: {prefix: /}, direct_response: {status: 404}}]}]}
          http_filters:
          - name: trellis.filters.http.bridge
            typed_config:
              "@type": type.googleapis.com/xds.type.v3.TypedStruct
              type_url: type.googleapis.com/trellis.filters.http.bridge.v1.Bridge
              value:
                brokers:
                - {name: nats, type: nats, addresses: ["%s"], jet_stream: true}
                - {name: rabbit, type: amqp, addresses: ["%s"]}
                - {name: kafka, type: kafka, addresses: ["%s"]}
          - {name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
`
)

// publisher publishes one message and returns once it is acknowledged.
type publisher func(ctx context.Context) error

type result struct {
	broker, variant string
	p50, p99        time.Duration
	perSec          float64
}

func TestBridgeBench(t *testing.T) {
	if !*run {
		t.Skip("run with -bridgebench")
	}
	ns := brokertest.StartNATS(t, true)
	rb := brokertest.StartRabbit(t)
	kf := brokertest.StartKafka(t, 4)

	b, err := decode.Bootstrap(fmt.Appendf(nil, proxyCfg, ns.URL, rb.URL, kf.Addr))
	if err != nil {
		t.Fatal(err)
	}
	p := proxy.New(proxy.Options{Logger: slog.New(slog.DiscardHandler), DrainTimeout: time.Second})
	if err := p.Apply(b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *workers}}
	viaBridge := func(broker, topic string) publisher {
		url := "http://" + p.ListenerAddrs()["bridge"] + "/publish/" + broker + "/" + topic
		return func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
			req.Header.Set("Content-Type", "application/octet-stream")
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("bridge answered %d", resp.StatusCode)
			}
			return nil
		}
	}

	// Direct clients.
	nc, err := nats.Connect(ns.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "BENCH", Subjects: []string{"bench.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	natsDirect := func(ctx context.Context) error { _, err := js.Publish(ctx, "bench.direct", payload); return err }

	conn := brokertest.DialRabbit(t, rb.URL)
	chans := make(chan *amqp.Channel, *workers)
	for range *workers {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		if err := ch.Confirm(false); err != nil {
			t.Fatal(err)
		}
		chans <- ch
	}
	for _, q := range []string{"bench-direct", "bench-bridge"} {
		ch := <-chans
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		chans <- ch
	}
	amqpDirect := func(ctx context.Context) error {
		ch := <-chans
		defer func() { chans <- ch }()
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", "bench-direct", true, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, ContentType: "application/octet-stream", Body: payload})
		if err != nil {
			return err
		}
		if ok, err := dc.WaitContext(ctx); err != nil || !ok {
			return fmt.Errorf("confirm: %v %v", ok, err)
		}
		return nil
	}

	kc, err := kgo.NewClient(kgo.SeedBrokers(kf.Addr), kgo.AllowAutoTopicCreation(), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	kafkaDirect := func(ctx context.Context) error {
		return kc.ProduceSync(ctx, &kgo.Record{Topic: "bench-direct", Value: payload}).FirstErr()
	}

	var results []result
	for _, v := range []struct {
		broker, variant string
		pub             publisher
	}{
		{"nats (JetStream)", "direct", natsDirect},
		{"nats (JetStream)", "bridge", viaBridge("nats", "bench.bridge")},
		{"rabbitmq", "direct", amqpDirect},
		{"rabbitmq", "bridge", viaBridge("rabbit", "bench-bridge")},
		{"kafka (kfake)", "direct", kafkaDirect},
		{"kafka (kfake)", "bridge", viaBridge("kafka", "bench-bridge")},
	} {
		r := measure(t, v.pub)
		r.broker, r.variant = v.broker, v.variant
		results = append(results, r)
	}
	t.Logf("| broker | path | p50 (1 in flight) | p99 | msgs/s (%d publishers) |", *workers)
	t.Logf("|---|---|---:|---:|---:|")
	for i, r := range results {
		t.Logf("| %s | %s | %v | %v | %.0f |", r.broker, r.variant, r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.perSec)
		if r.variant == "bridge" {
			d := results[i-1]
			t.Logf("| %s | bridge − direct | %s | %s | %.2fx |", r.broker, signed(r.p50-d.p50), signed(r.p99-d.p99), r.perSec/d.perSec)
		}
	}
}

// measure runs seqN publishes one at a time (latency), then workers
// publishers for dur (throughput).
func measure(t *testing.T, pub publisher) result {
	ctx := context.Background()
	for range 50 { // warm up connections, streams, topics
		if err := pub(ctx); err != nil {
			t.Fatal(err)
		}
	}
	lat := make([]time.Duration, *seqN)
	for i := range lat {
		start := time.Now()
		if err := pub(ctx); err != nil {
			t.Fatal(err)
		}
		lat[i] = time.Since(start)
	}
	slices.Sort(lat)
	var n atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	start := time.Now()
	deadline := start.Add(*dur)
	for range *workers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if err := pub(ctx); err != nil {
					failed.Store(err)
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatal(err)
	}
	return result{p50: lat[len(lat)/2], p99: lat[len(lat)*99/100], perSec: float64(n.Load()) / time.Since(start).Seconds()}
}

func signed(d time.Duration) string {
	if d >= 0 {
		return "+" + d.Round(time.Microsecond).String()
	}
	return "−" + (-d).Round(time.Microsecond).String()
}
