package demo

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestStartNATS starts the demo's nats-server on a free port: JetStream's
// stream covers the published subject and the dead-letter subject, the
// store is in the data directory, and stop closes the port.
func TestStartNATS(t *testing.T) {
	dir := t.TempDir()
	pp := &portPicker{random: true}
	port, err := pp.pick(0)
	if err != nil {
		t.Fatal(err)
	}
	pp.release()
	ns, err := startNATS(context.Background(), dir, port)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			ns.stop()
		}
	})
	nc, err := nats.Connect(ns.url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, subject := range []string{topicViewed, "reviews.dead"} {
		name, err := js.StreamNameBySubject(ctx, subject)
		if err != nil || name != streamName {
			t.Errorf("stream of %s: %q, %v; want %s", subject, name, err, streamName)
		}
	}
	ack, err := js.Publish(ctx, topicViewed, []byte(`{}`))
	if err != nil || ack.Stream != streamName {
		t.Fatalf("JetStream publish: %+v, %v", ack, err)
	}
	info, err := js.AccountInfo(ctx)
	if err != nil || info.Store == 0 {
		t.Errorf("JetStream file store use %+v, %v; want bytes stored under %s", info, err, dir)
	}
	nc.Close()
	ns.stop()
	stopped = true
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(ns.url, "nats://"), time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after stop", ns.url)
	}
}

// bridgeStub records the publishes it gets, answering status.
type bridgeStub struct {
	mu     sync.Mutex
	got    []*http.Request
	bodies []string
	status int
}

func (b *bridgeStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	b.mu.Lock()
	b.got = append(b.got, r)
	b.bodies = append(b.bodies, string(body))
	status := b.status
	b.mu.Unlock()
	w.WriteHeader(status)
}

// waitFor polls cond every 10 ms for at most 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling
	}
}

// TestPublisher: reviews' events reach the bridge as CloudEvents in
// binary content mode, a refusal counts as failed, and a closed
// publisher publishes no more.
func TestPublisher(t *testing.T) {
	stub := &bridgeStub{status: http.StatusOK}
	srv := httptest.NewServer(stub)
	t.Cleanup(srv.Close)
	p := newPublisher(srv.URL+"/publish/events/reviews.viewed", "/demo/reviews/reviews-9")
	p.publish(ReviewViewed{Product: 2, Reviews: 1, Instance: "reviews-9", Version: "v1"})
	waitFor(t, "the event published", func() bool { return p.published.Load() == 1 })
	stub.mu.Lock()
	r, body := stub.got[0], stub.bodies[0]
	stub.status = http.StatusBadGateway
	stub.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/publish/events/reviews.viewed" || r.Header.Get("Ce-Type") != eventTypeViewed ||
		r.Header.Get("Ce-Specversion") != "1.0" || r.Header.Get("Ce-Source") != "/demo/reviews/reviews-9" ||
		r.Header.Get("Ce-Id") != "/demo/reviews/reviews-9/1" || r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("publish: %s %s %v", r.Method, r.URL.Path, r.Header)
	}
	var ev ReviewViewed
	if err := json.Unmarshal([]byte(body), &ev); err != nil || ev != (ReviewViewed{2, 1, "reviews-9", "v1"}) {
		t.Errorf("event data %q: %+v, %v", body, ev, err)
	}
	p.publish(ReviewViewed{Product: 3})
	waitFor(t, "the refused event counted", func() bool { return p.failed.Load() == 1 })
	p.close()
	p.publish(ReviewViewed{Product: 4})
	stub.mu.Lock()
	n := len(stub.got)
	stub.mu.Unlock()
	if n != 2 || p.published.Load() != 1 {
		t.Errorf("after close: %d publishes, %d published; want 2 and 1", n, p.published.Load())
	}
}

// TestPublisherDropsWhenFull: a bridge that does not answer never blocks
// the caller; events beyond the queue are dropped and counted.
func TestPublisherDropsWhenFull(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	p := newPublisher(srv.URL+"/publish/events/reviews.viewed", "/demo/test")
	t.Cleanup(p.close)
	start := time.Now()
	for range cap(p.q) + 50 {
		p.publish(ReviewViewed{})
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("publishing to a stuck bridge took %v", d)
	}
	if p.dropped.Load() < 49 {
		t.Errorf("dropped %d; want at least 49 of %d beyond a queue of %d", p.dropped.Load(), cap(p.q)+50, cap(p.q))
	}
}

// TestNotifier: valid events are acknowledged (204) and counted, the
// failure share answers 500, and a delivery that is not a reviews.viewed
// event is refused with 400.
func TestNotifier(t *testing.T) {
	self := ServedBy{"notifier", "notifier-9", "v1"}
	post := func(url, ceType, body string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, url+notifierPath, strings.NewReader(body))
		req.Header.Set("Ce-Type", ceType)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	ok := startT(t, (&notifier{self: self}).handler())
	for range 3 {
		if s := post(ok, eventTypeViewed, `{"product":1}`); s != http.StatusNoContent {
			t.Errorf("delivery: %d, want 204", s)
		}
	}
	if s := post(ok, "something.else", `{}`); s != http.StatusBadRequest {
		t.Errorf("another event type: %d, want 400", s)
	}
	if s := post(ok, eventTypeViewed, `not json`); s != http.StatusBadRequest {
		t.Errorf("data not JSON: %d, want 400", s)
	}
	failing := startT(t, (&notifier{self: self, failPercent: 100}).handler())
	if s := post(failing, eventTypeViewed, `{"product":1}`); s != http.StatusInternalServerError {
		t.Errorf("failing notifier: %d, want 500", s)
	}
	for _, c := range []struct {
		url              string
		received, failed uint64
	}{{ok, 3, 0}, {failing, 0, 1}} {
		resp, body := get(t, c.url+"/stats", http.Header{})
		var st NotifierStats
		if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil ||
			st.Received != c.received || st.Failed != c.failed || st.ServedBy != self {
			t.Errorf("GET /stats: %s %s; want received %d, failed %d", resp.Status, body, c.received, c.failed)
		}
	}
}

// TestReviewsReportsReads: every answered read of reviews is reported,
// a simulated failure is not.
func TestReviewsReportsReads(t *testing.T) {
	var mu sync.Mutex
	var got []ReviewViewed
	viewed := func(ev ReviewViewed) { mu.Lock(); got = append(got, ev); mu.Unlock() }
	u := startT(t, reviewsHandler(ServedBy{"reviews", "reviews-9", "v1"}, 0, viewed))
	if resp, _ := get(t, u+"/reviews/1", http.Header{}); resp.StatusCode != http.StatusOK {
		t.Fatal(resp.Status)
	}
	if resp, _ := get(t, u+"/reviews/99", http.Header{}); resp.StatusCode != http.StatusNotFound {
		t.Fatal(resp.Status)
	}
	failing := startT(t, reviewsHandler(ServedBy{"reviews", "reviews-8", "v2"}, 100, viewed))
	if resp, _ := get(t, failing+"/reviews/1", http.Header{}); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatal(resp.Status)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != (ReviewViewed{Product: 1, Reviews: 2, Instance: "reviews-9", Version: "v1"}) {
		t.Errorf("reported reads %+v; want the one answered read of product 1", got)
	}
}
