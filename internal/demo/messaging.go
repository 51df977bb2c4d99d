package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// This file is the demo's event-driven side: an embedded nats-server with
// JetStream, reviews publishing an event for every review read through
// its sidecar's HTTP bridge, and the notifier service consuming them
// through a Subscription (examples/demo/messaging.yaml, docs/bridge.md).

// The demo's messaging names, as in examples/demo/messaging.yaml.
const (
	// brokerName is the demo's Broker.
	brokerName = "events"
	// topicViewed is the subject reviews publishes to.
	topicViewed = "reviews.viewed"
	// eventTypeViewed is the CloudEvents type of its events.
	eventTypeViewed = "dev.trellis.demo.review.viewed"
	// streamName is the JetStream stream the demo makes for reviews.>
	// (reviews.viewed and the dead-letter subject reviews.dead), with
	// limits so a long-running demo does not fill the disk.
	streamName = "DEMO_REVIEWS"
	// defaultNATSAddr is the Broker's address in messaging.yaml; the demo
	// replaces it with the server's when that runs on another port.
	defaultNATSAddr = "nats://127.0.0.1:4222"
	// notifierPath is where the notifier receives deliveries.
	notifierPath = "/events/reviews"
)

// natsServer is the demo's embedded nats-server.
type natsServer struct {
	srv *server.Server
	url string
}

// startNATS starts nats-server with JetStream on 127.0.0.1:port, storing
// in dir/nats, and makes the demo's stream. It handles no signals: Run
// stops it with everything else.
func startNATS(ctx context.Context, dir string, port int) (*natsServer, error) {
	opts := &server.Options{
		ServerName: "trellis-demo", Host: "127.0.0.1", Port: port,
		NoSigs: true, NoLog: true, JetStream: true, StoreDir: filepath.Join(dir, "nats"),
		JetStreamMaxMemory: 64 << 20, JetStreamMaxStore: 256 << 20,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats-server: %w", err)
	}
	go s.Start()
	n := &natsServer{srv: s, url: "nats://127.0.0.1:" + strconv.Itoa(port)}
	if !s.ReadyForConnections(10 * time.Second) {
		n.stop()
		return nil, fmt.Errorf("nats-server on %s: not ready within 10s", n.url)
	}
	if err := n.makeStream(ctx); err != nil {
		n.stop()
		return nil, err
	}
	return n, nil
}

// makeStream creates the stream of reviews.> (file storage, at most
// 15 minutes or 64 MiB of messages).
func (n *natsServer) makeStream(ctx context.Context) error {
	nc, err := nats.Connect(n.url, nats.Name("trellis demo"))
	if err != nil {
		return fmt.Errorf("nats-server on %s: %w", n.url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: streamName, Subjects: []string{"reviews.>"}, Storage: jetstream.FileStorage,
		MaxAge: 15 * time.Minute, MaxBytes: 64 << 20,
	})
	if err != nil {
		return fmt.Errorf("JetStream stream %s: %w", streamName, err)
	}
	return nil
}

// stop shuts the server down and waits until it has.
func (n *natsServer) stop() {
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
}

// ReviewViewed is the data of a reviews.viewed event.
type ReviewViewed struct {
	Product  int    `json:"product"`
	Reviews  int    `json:"reviews"`
	Instance string `json:"instance"`
	Version  string `json:"version"`
}

// publisher sends events to the sidecar's bridge
// (POST /publish/<broker>/<topic>) from a goroutine of its own, so a slow
// or absent broker never slows the requests that publish: when its queue
// is full an event is dropped and counted.
type publisher struct {
	url    string // http://127.0.0.1:<bridge port>/publish/<broker>/<topic>
	source string // the CloudEvents source
	client *http.Client
	q      chan []byte
	seq    atomic.Uint64
	cancel context.CancelFunc
	done   chan struct{}

	published, failed, dropped atomic.Uint64
}

// newPublisher starts a publisher of events from source to url.
func newPublisher(url, source string) *publisher {
	ctx, cancel := context.WithCancel(context.Background())
	p := &publisher{url: url, source: source, client: &http.Client{Timeout: 5 * time.Second},
		q: make(chan []byte, 256), cancel: cancel, done: make(chan struct{})}
	go p.run(ctx)
	return p
}

// publish queues an event with data v, or drops it when the queue is full.
func (p *publisher) publish(v any) {
	data, err := json.Marshal(v)
	if err != nil {
		p.dropped.Add(1)
		return
	}
	select {
	case p.q <- data:
	default:
		p.dropped.Add(1)
	}
}

func (p *publisher) run(ctx context.Context) {
	defer close(p.done)
	for {
		select {
		case <-ctx.Done():
			return
		case data := <-p.q:
			if p.post(ctx, data) {
				p.published.Add(1)
			} else {
				p.failed.Add(1)
			}
		}
	}
}

// post publishes one event in CloudEvents binary content mode and says
// whether the bridge answered 200 (the broker stored it).
func (p *publisher) post(ctx context.Context, data []byte) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(data))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Ce-Specversion", "1.0")
	req.Header.Set("Ce-Id", p.source+"/"+strconv.FormatUint(p.seq.Add(1), 10))
	req.Header.Set("Ce-Source", p.source)
	req.Header.Set("Ce-Type", eventTypeViewed)
	resp, err := p.client.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// close stops the publisher, abandoning the events still queued.
func (p *publisher) close() {
	p.cancel()
	<-p.done
}

// NotifierStats is the notifier's answer to GET /stats.
type NotifierStats struct {
	// Received counts the deliveries it acknowledged (2xx), Failed those
	// it answered 500 on purpose (the sidecar retries them).
	Received uint64   `json:"received"`
	Failed   uint64   `json:"failed"`
	ServedBy ServedBy `json:"servedBy"`
}

// notifier receives the reviews.viewed deliveries of the Subscription
// (CloudEvents in binary content mode) and answers 500 to failPercent of
// them, so the sidecar's retries show in `trellis stat topic`.
type notifier struct {
	self             ServedBy
	failPercent      float64
	mu               sync.Mutex
	received, failed uint64
}

func (n *notifier) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+notifierPath, func(w http.ResponseWriter, r *http.Request) {
		var ev ReviewViewed
		if r.Header.Get("Ce-Type") != eventTypeViewed || json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&ev) != nil {
			// Not retried into success: the sidecar dead-letters it.
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want a " + eventTypeViewed + " event with JSON data"})
			return
		}
		fail := n.failPercent > 0 && rand.Float64()*100 < n.failPercent
		n.mu.Lock()
		if fail {
			n.failed++
		} else {
			n.received++
		}
		n.mu.Unlock()
		if fail {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "notifier: simulated failure"})
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		n.mu.Lock()
		s := NotifierStats{Received: n.received, Failed: n.failed, ServedBy: n.self}
		n.mu.Unlock()
		writeJSON(w, http.StatusOK, s)
	})
	return mux
}
