package telemetry

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
)

// bridgeVecs are the bridge's metrics with the names and labels
// internal/bridge/metrics.go gives them, on a proxy registry.
type bridgeVecs struct {
	published, delivered, retries, dead *prometheus.CounterVec
	lag                                 *prometheus.GaugeVec
}

func newBridgeVecs(reg *metrics.Registry) *bridgeVecs {
	b := &bridgeVecs{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: famBridgePublished}, []string{"broker", "topic", "result"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: famBridgeDelivered}, []string{"subscription", "broker", "topic", "result"}),
		retries:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: famBridgeRetries}, []string{"subscription"}),
		dead:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trellis_bridge_dead_lettered_total"}, []string{"subscription"}),
		lag:       prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: famBridgeLag}, []string{"subscription"}),
	}
	reg.Prom.MustRegister(b.published, b.delivered, b.retries, b.dead, b.lag)
	return b
}

func topics(t *testing.T, a *Aggregator, q TopicQuery) []TopicRow {
	t.Helper()
	res, err := a.Topics(q)
	if err != nil {
		t.Fatal(err)
	}
	return res.Rows
}

func oneTopic(t *testing.T, a *Aggregator, q TopicQuery) TopicRow {
	t.Helper()
	rows := topics(t, a, q)
	if len(rows) != 1 {
		t.Fatalf("%+v: %d rows, want 1: %+v", q, len(rows), rows)
	}
	return rows[0]
}

// TestTopicsBridge: two proxies run the bridge; each interval web-1
// publishes 10 messages (and fails 2), and both deliver to one
// subscription of orders (8 accepted, 3 rejected then retried, 1
// dead-lettered each). The lag of the shared subscription counts once
// (the largest report), a second subscription's adds to it.
func TestTopicsBridge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newAgg(t, Options{})
		web, api := metrics.New(), metrics.New()
		bw, ba := newBridgeVecs(web), newBridgeVecs(api)
		for i := range 7 {
			bw.published.WithLabelValues("kafka", "orders", "ok").Add(10)
			bw.published.WithLabelValues("kafka", "orders", "unavailable").Add(2)
			for _, b := range []*bridgeVecs{bw, ba} {
				b.delivered.WithLabelValues("shop/orders", "kafka", "orders", "ok").Add(8)
				b.delivered.WithLabelValues("shop/orders", "kafka", "orders", "rejected").Add(3)
				b.retries.WithLabelValues("shop/orders").Add(3)
				b.delivered.WithLabelValues("shop/orders", "kafka", "orders", "dead_lettered").Inc()
				b.dead.WithLabelValues("shop/orders").Inc()
			}
			bw.lag.WithLabelValues("shop/orders").Set(float64(40 + i))
			ba.lag.WithLabelValues("shop/orders").Set(30)
			push(t, a, "default/web-1", web)
			push(t, a, "default/api-1", api)
			time.Sleep(10 * time.Second)
		}
		r := oneTopic(t, a, TopicQuery{})
		want := TopicCounts{Published: 60, Delivered: 96, Retried: 36, DeadLettered: 12}
		if r.Mesh != "default" || r.Broker != "kafka" || r.Topic != "orders" || r.Via != ViaBridge || r.Counts != want {
			t.Errorf("row %+v, want default kafka orders via bridge with counts %+v over the last 6 intervals", r, want)
		}
		if !near(r.PerSecond.Published, 1, 1e-9) || !near(r.PerSecond.Delivered, 1.6, 1e-9) ||
			!near(r.PerSecond.Retried, 0.6, 1e-9) || !near(r.PerSecond.DeadLettered, 0.2, 1e-9) {
			t.Errorf("rates %+v, want 1, 1.6, 0.6, 0.2 per second", r.PerSecond)
		}
		if r.Lag == nil || *r.Lag != 46 {
			t.Errorf("lag %v, want 46 (web-1's latest report, the larger)", r.Lag)
		}

		// A second subscription of the topic, known by its first delivery.
		ba.delivered.WithLabelValues("shop/audit", "kafka", "orders", "ok").Inc()
		ba.lag.WithLabelValues("shop/audit").Set(5)
		push(t, a, "default/api-1", api)
		if r := oneTopic(t, a, TopicQuery{Name: "orders"}); r.Lag == nil || *r.Lag != 51 {
			t.Errorf("lag %v, want 46 + 5", r.Lag)
		}

		// Lags go stale when the proxies stop pushing; the counts stay
		// for the retention, then the topic goes.
		time.Sleep(time.Minute)
		if r := oneTopic(t, a, TopicQuery{Window: 15 * time.Minute}); r.Lag != nil || r.Counts.Published != 70 {
			t.Errorf("a minute later: lag %v, published %d; want no lag, 70", r.Lag, r.Counts.Published)
		}
		time.Sleep(DefaultRetention)
		push(t, a, "default/web-1", metrics.New()) // a push sweeps
		if rows := topics(t, a, TopicQuery{}); len(rows) != 0 {
			t.Errorf("after the retention: %+v, want no topics", rows)
		}
	})
}

// TestTopicsFilters: the caller's and the broker's sidecars both count
// NATS and Kafka traffic; only the caller's side (outbound) counts as
// produced and consumed, while denials count where the policy refused.
func TestTopicsFilters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newAgg(t, Options{})
		web, api := metrics.New(), metrics.New()
		for range 4 {
			for _, side := range []struct {
				reg    *metrics.Registry
				prefix string
			}{{web, "outbound:"}, {api, "inbound:"}} {
				n := side.reg.NATS(side.prefix + "default/events:4222")
				for range 20 {
					n.Subject(metrics.NATSPublish, []byte("events.created")).Add(7)
				}
				for range 30 {
					n.Subject(metrics.NATSDeliver, []byte("events.*")).Add(7)
				}
				k := side.reg.Kafka(side.prefix + "default/kafka:9092")
				k.Topic("orders").Produced(50, 5000)
				k.Topic("orders").Fetched(40, 4000)
			}
			api.NATS("inbound:default/events:4222").Denied("publish", []byte("secret.x"))
			api.Kafka("inbound:default/kafka:9092").DeniedTopic(0)
			push(t, a, "default/web-1", web)
			push(t, a, "default/api-1", api)
			time.Sleep(10 * time.Second)
		}
		got := topics(t, a, TopicQuery{Window: 30 * time.Second})
		type row struct {
			broker, topic, via string
			c                  TopicCounts
		}
		var rows []row
		for _, r := range got {
			rows = append(rows, row{r.Broker, r.Topic, r.Via, r.Counts})
			if r.Lag != nil {
				t.Errorf("%s %s: lag %d, want none (filters report no lag)", r.Broker, r.Topic, *r.Lag)
			}
		}
		// The 30 s window holds the last three of the four intervals.
		want := []row{
			{"default/events:4222", "events.*", ViaNATS, TopicCounts{Consumed: 90}},
			{"default/events:4222", "events.created", ViaNATS, TopicCounts{Produced: 60}},
			{"default/events:4222", "secret.x", ViaNATS, TopicCounts{Denied: 3}},
			{"default/kafka:9092", "", ViaKafka, TopicCounts{Denied: 3}},
			{"default/kafka:9092", "orders", ViaKafka, TopicCounts{Produced: 150, Consumed: 120}},
		}
		if !slices.Equal(rows, want) {
			t.Errorf("rows\n%+v\nwant\n%+v", rows, want)
		}
		if r := oneTopic(t, a, TopicQuery{Name: "events.created"}); !near(r.PerSecond.Produced, 2, 1e-9) {
			t.Errorf("events.created produced %v/s, want 2", r.PerSecond.Produced)
		}
	})
}

// TestTopicsQuery selects by mesh, topic and broker.
func TestTopicsQuery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		res := resolver{proxies: map[string]Proxy{
			"default/web-1": {Mesh: "default", Dataplane: "default/web-1", Service: "default/web"},
			"other/web-1":   {Mesh: "other", Dataplane: "other/web-1", Service: "other/web"},
		}}
		a := newAgg(t, Options{Resolver: res})
		d, o := metrics.New(), metrics.New()
		bd := newBridgeVecs(d)
		for range 2 {
			bd.published.WithLabelValues("nats", "orders", "ok").Inc()
			d.NATS("outbound:default/events:4222").Subject(metrics.NATSPublish, []byte("orders")).Add(1)
			o.Kafka("outbound:shop/kafka:9092").Topic("orders").Produced(1, 1)
			push(t, a, "default/web-1", d)
			push(t, a, "other/web-1", o)
			time.Sleep(10 * time.Second)
		}
		for _, c := range []struct {
			name string
			q    TopicQuery
			want []string // broker of each row
		}{
			{"all", TopicQuery{}, []string{"default/events:4222", "nats", "shop/kafka:9092"}},
			{"mesh", TopicQuery{Mesh: "other"}, []string{"shop/kafka:9092"}},
			{"topic", TopicQuery{Name: "orders", Mesh: "default"}, []string{"default/events:4222", "nats"}},
			{"no such topic", TopicQuery{Name: "order"}, nil},
			{"broker name", TopicQuery{Broker: "nats"}, []string{"nats"}},
			{"service port", TopicQuery{Broker: "default/events:4222"}, []string{"default/events:4222"}},
			{"service port in any namespace", TopicQuery{Broker: "kafka:9092"}, []string{"shop/kafka:9092"}},
			{"service", TopicQuery{Broker: "events"}, []string{"default/events:4222"}},
			{"service with namespace", TopicQuery{Broker: "shop/kafka"}, []string{"shop/kafka:9092"}},
			{"other port", TopicQuery{Broker: "events:4223"}, nil},
		} {
			// No t.Run: subtests cannot start inside a synctest bubble.
			var got []string
			for _, r := range topics(t, a, c.q) {
				got = append(got, r.Broker)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("%s: brokers %q, want %q", c.name, got, c.want)
			}
		}
		if _, err := a.Topics(TopicQuery{Window: time.Hour}); err == nil {
			t.Error("a window beyond the retention was accepted")
		}
	})
}

// TestTopicsPushOrder: retries and lag labelled by subscription only are
// attributed even when they come before the deliveries that name the
// subscription's topic, and a subscription never delivered is skipped.
func TestTopicsPushOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newAgg(t, Options{})
		reg := metrics.New()
		b := newBridgeVecs(reg)
		b.lag.WithLabelValues("shop/idle").Set(9)
		for range 3 {
			b.delivered.WithLabelValues("shop/orders", "kafka", "orders", "error").Add(2)
			b.retries.WithLabelValues("shop/orders").Add(2)
			b.lag.WithLabelValues("shop/orders").Set(7)
			fams, err := reg.Prom.Gather()
			if err != nil {
				t.Fatal(err)
			}
			slices.Reverse(fams) // lag and retries first
			if err := a.Ingest("default/web-1", fams); err != nil {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Second)
		}
		r := oneTopic(t, a, TopicQuery{})
		if r.Topic != "orders" || r.Counts.Retried != 6 || r.Counts.Delivered != 0 || r.Lag == nil || *r.Lag != 7 {
			t.Errorf("row %+v lag %v, want orders with 6 retries, none delivered, lag 7", r, r.Lag)
		}
	})
}

// TestTopicsCap: topics share the cap on series.
func TestTopicsCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newAgg(t, Options{MaxSeries: 1})
		reg := metrics.New()
		k := reg.Kafka("outbound:default/kafka:9092")
		for range 2 {
			k.Topic("a").Produced(1, 1)
			k.Topic("b").Produced(1, 1)
			push(t, a, "default/web-1", reg)
			time.Sleep(10 * time.Second)
		}
		if len(a.topics) != 1 || a.dropped != 2 {
			t.Errorf("%d topics, %d dropped; want the cap of 1 held and one drop per push", len(a.topics), a.dropped)
		}
	})
}

// TestTopicsUnknownProxy: a proxy without a Dataplane counts nothing,
// lags included.
func TestTopicsUnknownProxy(t *testing.T) {
	a := newAgg(t, Options{})
	reg := metrics.New()
	b := newBridgeVecs(reg)
	b.delivered.WithLabelValues("shop/orders", "kafka", "orders", "ok").Inc()
	b.lag.WithLabelValues("shop/orders").Set(3)
	fams, err := reg.Prom.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := a.Ingest("default/ghost", fams); err == nil {
			t.Fatal("an unknown proxy was accepted")
		}
	}
	if rows := topics(t, a, TopicQuery{}); len(rows) != 0 {
		t.Errorf("%+v, want no topics", rows)
	}
}
