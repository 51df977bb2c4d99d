package bridge

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trellis-mesh/trellis/internal/bridge/brokertest"
)

func TestConfigValidate(t *testing.T) {
	good := Broker{Name: "k", Type: Kafka, Addresses: []string{"127.0.0.1:9092"}}
	sub := Subscription{Name: "s", Broker: "k", Topic: "t", ConsumerGroup: "g", URL: "http://127.0.0.1:8080/e"}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // substring of the error; "" = valid
	}{
		{"valid", Config{Brokers: []Broker{good}, Subscriptions: []Subscription{sub}}, ""},
		{"type", Config{Brokers: []Broker{{Name: "x", Type: "mqtt", Addresses: []string{"a"}}}}, `brokers[0].type: "mqtt" is not kafka, nats or amqp`},
		{"duplicate broker", Config{Brokers: []Broker{good, good}}, `brokers[1].name: duplicate "k"`},
		{"addresses", Config{Brokers: []Broker{{Name: "x", Type: NATS}}}, "brokers[0].addresses: at least one required"},
		{"jetstream on kafka", Config{Brokers: []Broker{{Name: "x", Type: Kafka, Addresses: []string{"a"}, JetStream: true}}}, "brokers[0].jetStream: only for nats"},
		{"half credentials", Config{Brokers: []Broker{{Name: "x", Type: AMQP, Addresses: []string{"a"}, UsernameFile: "/u"}}}, "brokers[0].passwordFile"},
		{"unknown broker", Config{Brokers: []Broker{good}, Subscriptions: []Subscription{func() Subscription { s := sub; s.Broker = "n"; return s }()}}, `subscriptions[0].broker: no broker "n"`},
		{"kafka topic", Config{Brokers: []Broker{good}, Subscriptions: []Subscription{func() Subscription { s := sub; s.Topic = "a/b"; return s }()}}, "subscriptions[0].topic: topic \"a/b\": character"},
		{"url", Config{Brokers: []Broker{good}, Subscriptions: []Subscription{func() Subscription { s := sub; s.URL = "ftp://x"; return s }()}}, "subscriptions[0].url"},
		{"group", Config{Brokers: []Broker{good}, Subscriptions: []Subscription{func() Subscription { s := sub; s.ConsumerGroup = ""; return s }()}}, "subscriptions[0].consumerGroup: required"},
		{"backoff", Config{Brokers: []Broker{good}, Subscriptions: []Subscription{func() Subscription { s := sub; s.BackoffBase = time.Minute; return s }()}}, "subscriptions[0].backoffMax"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestCheckTopic(t *testing.T) {
	for _, tc := range []struct {
		typ       BrokerType
		topic     string
		wildcards bool
		ok        bool
	}{
		{NATS, "a.b", false, true}, {NATS, "a.*", false, false}, {NATS, "a.>", true, true}, {NATS, "a.>.b", true, false}, {NATS, "a..b", false, false},
		{Kafka, "orders-v1.x_y", false, true}, {Kafka, "a b", false, false},
		{AMQP, "orders/created", false, true}, {AMQP, "amq.x", false, false},
	} {
		if err := checkTopic(tc.typ, tc.topic, tc.wildcards); (err == nil) != tc.ok {
			t.Errorf("checkTopic(%s, %q, %v) = %v, want ok=%v", tc.typ, tc.topic, tc.wildcards, err, tc.ok)
		}
	}
}

func TestBackoff(t *testing.T) {
	for attempt, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 10: time.Second} {
		for range 20 {
			got := backoff(100*time.Millisecond, time.Second, attempt)
			if got < want*8/10 || got > want*12/10 {
				t.Fatalf("backoff(attempt %d) = %v, want %v ±20%%", attempt, got, want)
			}
		}
	}
}

// TestUpdateReconciles: an identical configuration keeps the running
// consumers, a changed subscription is restarted, a removed one stopped,
// and an invalid configuration changes nothing.
func TestUpdateReconciles(t *testing.T) {
	n := brokertest.StartNATS(t, true)
	a := newApp(t)
	b := New(Options{})
	t.Cleanup(func() { b.Close() })
	bc := Broker{Name: "nats", Type: NATS, Addresses: []string{n.URL}, JetStream: true}
	s1 := Subscription{Name: "one", Broker: "nats", Topic: "one", ConsumerGroup: "g1", URL: a.srv.URL + "/events"}
	s2 := Subscription{Name: "two", Broker: "nats", Topic: "two", ConsumerGroup: "g2", URL: a.srv.URL + "/events"}
	if err := b.Update(Config{Brokers: []Broker{bc}, Subscriptions: []Subscription{s1, s2}}); err != nil {
		t.Fatal(err)
	}
	r1, r2, conn := b.subs["one"], b.subs["two"], b.brokers["nats"]
	if err := b.Update(Config{Brokers: []Broker{bc}, Subscriptions: []Subscription{s2, s1}}); err != nil {
		t.Fatal(err)
	}
	if b.subs["one"] != r1 || b.subs["two"] != r2 || b.brokers["nats"] != conn {
		t.Fatal("an identical configuration restarted something")
	}
	s1.Concurrency = 3
	if err := b.Update(Config{Brokers: []Broker{bc}, Subscriptions: []Subscription{s1}}); err != nil {
		t.Fatal(err)
	}
	if b.subs["one"] == r1 || b.subs["two"] != nil || b.brokers["nats"] != conn {
		t.Fatalf("changed subscription not restarted or removed one kept: %v", b.subs)
	}
	select {
	case <-r2.done:
	default:
		t.Fatal("removed subscription still running")
	}
	if err := b.Update(Config{Brokers: []Broker{bc}, Subscriptions: []Subscription{{Name: "bad"}}}); err == nil {
		t.Fatal("invalid configuration accepted")
	}
	if b.subs["one"] == nil {
		t.Fatal("invalid configuration changed the state")
	}
	// The restarted subscription still delivers.
	pub := httptest.NewServer(b)
	t.Cleanup(pub.Close)
	if code, out := publish(t, pub.URL+"/publish/nats/one", []byte("after"), nil); code != http.StatusOK {
		t.Fatalf("publish: %d %v", code, out)
	}
	a.wait("delivery after restart", 20*time.Second, func() bool { _, ok := a.ok["after"]; return ok })
}

// TestKafkaKeyOrder: with concurrency 4, the records of one key arrive in
// the order they were produced (lanes by key hash); with a slow
// application the other keys keep flowing.
func TestKafkaKeyOrder(t *testing.T) {
	k := brokertest.StartKafka(t, 3)
	a := newApp(t)
	b := New(Options{})
	t.Cleanup(func() { b.Close() })
	bc := Broker{Name: "kafka", Type: Kafka, Addresses: []string{k.Addr}}
	if err := b.Update(Config{Brokers: []Broker{bc}, Subscriptions: []Subscription{
		{Name: "s", Broker: "kafka", Topic: "keyed", ConsumerGroup: "g", URL: a.srv.URL + "/events", Concurrency: 4},
	}}); err != nil {
		t.Fatal(err)
	}
	pub := httptest.NewServer(b)
	t.Cleanup(pub.Close)
	const keys, per = 5, 20
	for i := range per {
		for key := range keys {
			h := http.Header{PartitionKeyHeader: {fmt.Sprint("key-", key)}}
			if code, out := publish(t, pub.URL+"/publish/kafka/keyed", fmt.Appendf(nil, "%d-%d", key, i), h); code != http.StatusOK {
				t.Fatalf("publish: %d %v", code, out)
			}
		}
	}
	a.wait("all records", 30*time.Second, func() bool { return len(a.ok) == keys*per })
	a.mu.Lock()
	defer a.mu.Unlock()
	next := map[string]int{}
	for _, d := range a.order {
		key, i, _ := strings.Cut(d, "-")
		if want := fmt.Sprint(next[key]); i != want {
			t.Fatalf("key %s: got record %s before %s (order %v)", key, i, want, a.order)
		}
		next[key]++
	}
}

// TestNATSCore: without JetStream the bridge publishes with a flush and
// consumes with a queue subscription (at most once: only messages
// published while it is subscribed arrive); failures still go to the
// dead-letter subject, and no lag is reported.
func TestNATSCore(t *testing.T) {
	n := brokertest.StartNATS(t, false)
	a := newApp(t)
	b := New(Options{})
	t.Cleanup(func() { b.Close() })
	if err := b.Update(Config{Brokers: []Broker{{Name: "core", Type: NATS, Addresses: []string{n.URL}}}, Subscriptions: []Subscription{
		{Name: "s", Broker: "core", Topic: "orders.>", ConsumerGroup: "g", URL: a.srv.URL + "/events", Concurrency: 2,
			MaxDeliveries: 2, BackoffBase: time.Millisecond, BackoffMax: time.Millisecond, DeadLetter: "dead.orders"},
		{Name: "dl", Broker: "core", Topic: "dead.orders", ConsumerGroup: "g", URL: a.srv.URL + "/dead"},
	}}); err != nil {
		t.Fatal(err)
	}
	pub := httptest.NewServer(b)
	t.Cleanup(pub.Close)
	// The subscriptions start in the background: publish probes until one
	// (and a failing one's dead letter) arrives.
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		publish(t, pub.URL+"/publish/core/orders.probe", fmt.Appendf(nil, "probe-%d", i), nil)
		publish(t, pub.URL+"/publish/core/orders.probe", fmt.Appendf(nil, "fail-probe-%d", i), nil)
		a.mu.Lock()
		ready := len(a.ok) > 0 && len(a.dead) > 0
		a.mu.Unlock()
		if ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("core NATS subscriptions never delivered")
		}
		<-time.After(20 * time.Millisecond)
	}
	for i := range 20 {
		data := fmt.Sprint("core-", i)
		if i%5 == 0 {
			data = fmt.Sprint("fail-core-", i)
		}
		if code, out := publish(t, pub.URL+"/publish/core/orders.created", []byte(data), nil); code != http.StatusOK {
			t.Fatalf("publish: %d %v", code, out)
		}
	}
	a.wait("core deliveries", 20*time.Second, func() bool {
		for i := range 20 {
			if _, ok := a.ok[fmt.Sprint("core-", i)]; !ok && i%5 != 0 {
				return false
			}
			if _, ok := a.dead[fmt.Sprint("fail-core-", i)]; !ok && i%5 == 0 {
				return false
			}
		}
		return true
	})
	if _, err := b.subs["s"].broker.Lag(context.Background(), &b.subs["s"].sub); err == nil {
		t.Error("core NATS reported a lag")
	}
	if code, out := publish(t, pub.URL+"/publish/core/orders.*", []byte("x"), nil); code != http.StatusBadRequest {
		t.Errorf("publish to a wildcard subject: %d %v", code, out)
	}
}

// TestPublishFailures: a JetStream stream that refuses the message (full,
// discard new) answers 502 with the cause; a stopped server 503 or 504;
// the metrics count each result.
func TestPublishFailures(t *testing.T) {
	n := brokertest.StartNATS(t, true)
	b := New(Options{PublishTimeout: 2 * time.Second})
	t.Cleanup(func() { b.Close() })
	if err := b.Update(Config{Brokers: []Broker{{Name: "js", Type: NATS, Addresses: []string{n.URL}, JetStream: true}}}); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "FULL", Subjects: []string{"full"},
		MaxMsgs: 1, Discard: jetstream.DiscardNew}); err != nil {
		t.Fatal(err)
	}
	pub := httptest.NewServer(b)
	t.Cleanup(pub.Close)
	if code, out := publish(t, pub.URL+"/publish/js/full", []byte("1"), nil); code != http.StatusOK {
		t.Fatalf("first publish: %d %v", code, out)
	}
	code, out := publish(t, pub.URL+"/publish/js/full", []byte("2"), nil)
	if code != http.StatusBadGateway || out["broker"] != "js" || out["topic"] != "full" || !strings.Contains(out["cause"], "maximum messages") {
		t.Fatalf("publish to a full stream: %d %v", code, out)
	}
	n.Stop()
	code, out = publish(t, pub.URL+"/publish/js/full", []byte("3"), nil)
	if code != http.StatusServiceUnavailable && code != http.StatusGatewayTimeout {
		t.Fatalf("publish with the server down: %d %v", code, out)
	}
	if got := value(b.m.published.WithLabelValues("js", "full", resultRefused)); got != 1 {
		t.Errorf("published refused = %v, want 1", got)
	}
}
