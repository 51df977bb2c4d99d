package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/trellis-mesh/trellis/internal/bridge/brokertest"
)

// app is an HTTP-only subscriber: it records each CloudEvent delivered to
// /events (answering 500 to events whose data starts with "fail") and to
// /dead.
type app struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	ok       map[string]cloudevents.Event // by data
	attempts map[string]int
	dead     map[string]cloudevents.Event
	order    []string // data of /events 2xx, in delivery order
	changed  chan struct{}
}

func newApp(t testing.TB) *app {
	a := &app{t: t, ok: map[string]cloudevents.Event{}, attempts: map[string]int{}, dead: map[string]cloudevents.Event{}, changed: make(chan struct{}, 1)}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *app) serve(w http.ResponseWriter, r *http.Request) {
	ev, err := cloudevents.NewEventFromHTTPRequest(r)
	if err != nil {
		a.t.Errorf("app got a request that is not a binary CloudEvent: %v (headers %v)", err, r.Header)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if cehttp.NewMessageFromHttpRequest(r).ReadEncoding().String() == "structured" {
		a.t.Errorf("delivery in structured mode, want binary")
	}
	data := string(ev.Data())
	a.mu.Lock()
	defer func() {
		a.mu.Unlock()
		select {
		case a.changed <- struct{}{}:
		default:
		}
	}()
	if r.URL.Path == "/dead" {
		a.dead[data] = *ev
		return
	}
	a.attempts[data]++
	if strings.HasPrefix(data, "fail") {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if _, dup := a.ok[data]; !dup {
		a.order = append(a.order, data)
	}
	a.ok[data] = *ev
}

// wait polls cond (under the lock) until it holds or the deadline passes.
func (a *app) wait(what string, d time.Duration, cond func() bool) {
	a.t.Helper()
	deadline := time.After(d)
	for {
		a.mu.Lock()
		ok := cond()
		a.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-a.changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			a.mu.Lock()
			defer a.mu.Unlock()
			a.t.Fatalf("timed out waiting for %s: ok=%d dead=%d", what, len(a.ok), len(a.dead))
		}
	}
}

func publish(t testing.TB, url string, body []byte, header http.Header) (int, map[string]string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func binaryHeaders(id, typ, extra string) http.Header {
	h := http.Header{"Ce-Specversion": {"1.0"}, "Ce-Id": {id}, "Ce-Source": {"/test"}, "Ce-Type": {typ}, "Content-Type": {"text/plain"}}
	if extra != "" {
		h.Set("Ce-Partitionkey", extra)
	}
	return h
}

// exercise runs the same scenario on one broker: binary, structured and
// raw publishes; deliveries with retries; the always-failing messages in
// the dead-letter topic with their reason and attempts; errors; metrics.
func exercise(t *testing.T, bc Broker, topic, dlTopic string) {
	a := newApp(t)
	reg := prometheus.NewRegistry()
	b := New(Options{Registerer: reg, LagInterval: 50 * time.Millisecond, Source: "spiffe://test/default/pub"})
	t.Cleanup(func() { b.Close() })
	cfg := Config{Brokers: []Broker{bc}, Subscriptions: []Subscription{
		{Name: "orders", Broker: bc.Name, Topic: topic, ConsumerGroup: "billing", URL: a.srv.URL + "/events",
			Concurrency: 4, MaxDeliveries: 3, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond, DeadLetter: dlTopic},
		{Name: "orders-dead", Broker: bc.Name, Topic: dlTopic, ConsumerGroup: "billing-dl", URL: a.srv.URL + "/dead"},
	}}
	if err := b.Update(cfg); err != nil {
		t.Fatal(err)
	}
	pub := httptest.NewServer(b)
	t.Cleanup(pub.Close)
	url := pub.URL + "/publish/" + bc.Name + "/" + topic

	const n = 40
	want := map[string]bool{}
	wantDead := map[string]bool{}
	for i := range n {
		data := fmt.Sprintf("msg-%d", i)
		if i%10 == 3 {
			data = fmt.Sprintf("fail-%d", i)
			wantDead[data] = true
		} else {
			want[data] = true
		}
		var code int
		var out map[string]string
		switch i % 3 {
		case 0: // binary
			code, out = publish(t, url, []byte(data), binaryHeaders(fmt.Sprint("id-", i), "order.created", "k"))
		case 1: // structured
			body, _ := json.Marshal(map[string]any{"specversion": "1.0", "id": fmt.Sprint("id-", i), "source": "/test",
				"type": "order.created", "datacontenttype": "text/plain", "data": data})
			code, out = publish(t, url, body, http.Header{"Content-Type": {"application/cloudevents+json"}})
		default: // raw
			code, out = publish(t, url, []byte(data), http.Header{"Content-Type": {"text/plain"}})
		}
		if code != http.StatusOK || out["id"] == "" {
			t.Fatalf("publish %d: %d %v", i, code, out)
		}
	}
	a.wait("deliveries and dead letters", 60*time.Second, func() bool {
		for d := range want {
			if _, ok := a.ok[d]; !ok {
				return false
			}
		}
		return len(a.dead) == len(wantDead)
	})
	a.mu.Lock()
	for d := range wantDead {
		ev, ok := a.dead[d]
		if !ok {
			t.Errorf("%s not dead-lettered", d)
			continue
		}
		ext := ev.Extensions()
		if fmt.Sprint(ext[ExtDeliveryAttempts]) != "3" || !strings.Contains(fmt.Sprint(ext[ExtDeadLetterReason]), "500") || fmt.Sprint(ext[ExtDeadLetterSource]) != topic {
			t.Errorf("%s dead-lettered with extensions %v", d, ext)
		}
		if a.attempts[d] != 3 {
			t.Errorf("%s: %d attempts, want 3", d, a.attempts[d])
		}
	}
	ev := a.ok["msg-0"]
	if ev.ID() != "id-0" || ev.Type() != "order.created" || ev.Source() != "/test" || ev.DataContentType() != "text/plain" || fmt.Sprint(ev.Extensions()["partitionkey"]) != "k" {
		t.Errorf("binary event arrived as %v", ev)
	}
	if ev := a.ok["msg-1"]; ev.ID() != "id-1" || ev.Type() != "order.created" {
		t.Errorf("structured event arrived as %v", ev)
	}
	if ev := a.ok["msg-2"]; ev.Type() != RawEventType || ev.Source() != "spiffe://test/default/pub" || ev.ID() == "" {
		t.Errorf("raw body arrived as %v", ev)
	}
	a.mu.Unlock()

	// Errors.
	if code, out := publish(t, pub.URL+"/publish/nope/"+topic, []byte("x"), nil); code != http.StatusNotFound || out["broker"] != "nope" {
		t.Errorf("unknown broker: %d %v", code, out)
	}
	if code, out := publish(t, url, []byte("{"), http.Header{"Content-Type": {"application/cloudevents+json"}}); code != http.StatusBadRequest || out["cause"] == "" {
		t.Errorf("bad structured body: %d %v", code, out)
	}
	if code, out := publish(t, url, []byte("x"), http.Header{"Ce-Specversion": {"1.0"}, "Ce-Id": {"1"}}); code != http.StatusBadRequest || !strings.Contains(out["cause"], "source") {
		t.Errorf("binary event without source: %d %v", code, out)
	}

	// Metrics.
	if got := value(b.m.published.WithLabelValues(bc.Name, topic, "ok")); got != n {
		t.Errorf("published ok = %v, want %d", got, n)
	}
	if got := value(b.m.deadLettered.WithLabelValues("orders")); got != float64(len(wantDead)) {
		t.Errorf("dead_lettered = %v, want %d", got, len(wantDead))
	}
	if got := value(b.m.retries.WithLabelValues("orders")); got < float64(2*len(wantDead)) {
		t.Errorf("retries = %v, want >= %d", got, 2*len(wantDead))
	}
	if got := value(b.m.delivered.WithLabelValues("orders", bc.Name, topic, "rejected")); got != float64(3*len(wantDead)) {
		t.Errorf("delivered rejected = %v, want %d", got, 3*len(wantDead))
	}
	waitLag(t, b, "orders")
}

// waitLag waits until the subscription's lag gauge has been set to 0.
func waitLag(t *testing.T, b *Bridge, sub string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for ; ; <-tick.C {
		mfs, _ := b.o.Registerer.(*prometheus.Registry).Gather()
		for _, mf := range mfs {
			if mf.GetName() != "trellis_bridge_lag" {
				continue
			}
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == sub && m.GetGauge().GetValue() == 0 {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("trellis_bridge_lag{subscription=%q} never reported 0", sub)
		}
	}
}

func TestNATSJetStream(t *testing.T) {
	n := brokertest.StartNATS(t, true)
	exercise(t, Broker{Name: "events", Type: NATS, Addresses: []string{n.URL}, JetStream: true}, "orders.created", "orders.dead")
}

func TestKafka(t *testing.T) {
	k := brokertest.StartKafka(t, 3)
	exercise(t, Broker{Name: "events", Type: Kafka, Addresses: []string{k.Addr}}, "orders", "orders-dead")
}

func TestAMQP(t *testing.T) {
	r := brokertest.StartRabbit(t)
	exercise(t, Broker{Name: "events", Type: AMQP, Addresses: []string{r.URL}}, "orders", "orders-dead")
}

func TestPublishErrorStatus(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"refused", fmt.Errorf("%w: x", ErrRefused), 502},
		{"unavailable", fmt.Errorf("%w: x", ErrUnavailable), 503},
		{"timeout", fmt.Errorf("x: %w", context.DeadlineExceeded), 504},
		{"other", ctx.Err(), 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := publishStatus(tc.err); got != tc.want {
				t.Errorf("publishStatus(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}

// value reads a counter or gauge.
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}
