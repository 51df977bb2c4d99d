package bridge

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Options fields left zero.
const (
	DefaultPublishTimeout  = 10 * time.Second
	DefaultMaxMessageBytes = 1 << 20
	DefaultLagInterval     = 10 * time.Second
)

// Options configure a Bridge. The zero value is usable.
type Options struct {
	// Registerer receives the trellis_bridge_* metrics (the proxy's
	// registry). Nil: metrics are kept but not exported.
	Registerer prometheus.Registerer
	// Log receives connection and delivery problems. Nil: slog.Default().
	Log *slog.Logger
	// Source is the CloudEvents source of raw bodies the application
	// publishes (the sidecar's identity, e.g. "spiffe://td/mesh/orders").
	// Default "trellis-bridge".
	Source string
	// PublishTimeout bounds waiting for a broker's acknowledgement.
	// Default 10s.
	PublishTimeout time.Duration
	// MaxMessageBytes bounds a publish request's body (413 above).
	// Default 1 MiB.
	MaxMessageBytes int64
	// LagInterval is how often trellis_bridge_lag is refreshed. Default 10s.
	LagInterval time.Duration
	// Client delivers to the application. Default: a client of its own.
	Client *http.Client
}

// Bridge publishes what the application POSTs to brokers (ServeHTTP) and
// delivers the messages of its subscriptions to the application. Update
// replaces the configuration, restarting only what changed. Methods are
// safe for concurrent use.
type Bridge struct {
	o   Options
	log *slog.Logger
	m   *metrics

	mu      sync.RWMutex
	closed  bool
	source  string // of raw bodies
	brokers map[string]*brokerEntry
	subs    map[string]*subRunner
}

type brokerEntry struct {
	cfg    Broker
	client client
}

// client is one broker connection: publishing, consuming and lag.
type client interface {
	// Publish returns once the broker acknowledged m (nil) or refused it
	// (wrapping ErrRefused), or it could not be reached (ErrUnavailable)
	// or ctx ended.
	Publish(ctx context.Context, topic string, m *Message) error
	// Consume reads s.Topic until ctx ends or the connection fails
	// (returning an error; the caller calls it again after a pause),
	// calling settle for each message with s.Concurrency calls in flight.
	// A message is acknowledged to the broker only when settle returns
	// nil.
	Consume(ctx context.Context, s *Subscription, settle func(context.Context, *Message) error) error
	// Lag reports the messages waiting for s, or an error.
	Lag(ctx context.Context, s *Subscription) (int64, error)
	// Close releases the connection.
	Close()
}

// New returns a Bridge with no brokers and no subscriptions.
func New(o Options) *Bridge {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Source == "" {
		o.Source = "trellis-bridge"
	}
	if o.PublishTimeout == 0 {
		o.PublishTimeout = DefaultPublishTimeout
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if o.LagInterval == 0 {
		o.LagInterval = DefaultLagInterval
	}
	if o.Client == nil {
		o.Client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second}}
	}
	return &Bridge{o: o, log: o.Log.With("component", "bridge"), m: newMetrics(o.Registerer),
		brokers: map[string]*brokerEntry{}, subs: map[string]*subRunner{}}
}

// Update validates cfg and, when valid, makes it the bridge's state:
// brokers whose configuration changed are reconnected (and their
// subscriptions restarted), subscriptions that changed are restarted,
// removed ones stopped; everything unchanged keeps running. An invalid
// cfg changes nothing.
func (b *Bridge) Update(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("bridge closed")
	}
	b.source = cfg.Source
	if b.source == "" {
		b.source = b.o.Source
	}
	want := map[string]Broker{}
	for _, bc := range cfg.Brokers {
		want[bc.Name] = bc
	}
	changed := map[string]bool{}
	for name, e := range b.brokers {
		if bc, ok := want[name]; !ok || !sameBroker(bc, e.cfg) {
			changed[name] = true
		}
	}
	wantSubs := map[string]Subscription{}
	for _, s := range cfg.Subscriptions {
		wantSubs[s.Name] = s.withDefaults()
	}
	var stopping []*subRunner
	for name, r := range b.subs {
		if s, ok := wantSubs[name]; !ok || s != r.sub || changed[r.sub.Broker] {
			stopping = append(stopping, r)
			delete(b.subs, name)
			b.m.lag.DeleteLabelValues(name)
		}
	}
	// Cancel every stopping subscription first, then wait: their
	// in-flight deliveries end together (unacknowledged, so redelivered).
	for _, r := range stopping {
		r.cancel()
	}
	for _, r := range stopping {
		r.stop()
	}
	for name := range changed {
		b.brokers[name].client.Close()
		delete(b.brokers, name)
	}
	for _, bc := range cfg.Brokers {
		if _, ok := b.brokers[bc.Name]; ok {
			continue
		}
		c, err := newClient(bc, b.log.With("broker", bc.Name))
		if err != nil {
			// Credentials or TLS files unreadable: the broker is absent
			// (publishes get 503) until a later Update.
			b.log.Error("broker connection", "broker", bc.Name, "err", err)
			c = &brokenClient{err: err}
		}
		b.brokers[bc.Name] = &brokerEntry{cfg: bc, client: c}
	}
	for _, s := range cfg.Subscriptions {
		s = s.withDefaults()
		if _, ok := b.subs[s.Name]; ok {
			continue
		}
		b.subs[s.Name] = b.startSub(s, b.brokers[s.Broker].client)
	}
	return nil
}

// Subscriptions returns the number of subscriptions running.
func (b *Bridge) Subscriptions() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.subs)
}

// Close stops every subscription and broker connection.
func (b *Bridge) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	for _, r := range b.subs {
		r.cancel()
	}
	for _, r := range b.subs {
		r.stop()
	}
	for _, e := range b.brokers {
		e.client.Close()
	}
	b.subs, b.brokers = nil, nil
	return nil
}

// PublishPrefix is the path prefix of publish requests:
// POST /publish/<broker>/<topic>.
const PublishPrefix = "/publish/"

// ServeHTTP answers POST /publish/<broker>/<topic> (docs/bridge.md): 200
// with {"id": ...} once the broker accepted the message; 400 for a bad
// body, 404 for an unknown broker, 413 for a body over MaxMessageBytes,
// 502/503/504 when the broker refused, was unavailable or did not answer
// in time. Errors are JSON {"error", "broker", "topic", "cause"}.
func (b *Bridge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, PublishPrefix)
	brokerName, topic, _ := strings.Cut(rest, "/")
	if !ok || brokerName == "" || topic == "" {
		writeError(w, http.StatusNotFound, "not found: publish with POST /publish/<broker>/<topic>", "", "", nil)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "method not allowed: use POST", brokerName, topic, nil)
		return
	}
	b.mu.RLock()
	e, source := b.brokers[brokerName], b.source
	b.mu.RUnlock()
	if e == nil {
		writeError(w, http.StatusNotFound, "no such broker", brokerName, topic, nil)
		return
	}
	if err := checkTopic(e.cfg.Type, topic, false); err != nil {
		writeError(w, http.StatusBadRequest, "bad topic", brokerName, topic, err)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, b.o.MaxMessageBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", b.o.MaxMessageBytes), brokerName, topic, nil)
			return
		}
		writeError(w, http.StatusBadRequest, "reading body", brokerName, topic, err)
		return
	}
	msg, err := readEvent(r.Context(), r, body, cmp.Or(source, b.o.Source))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad body", brokerName, topic, err)
		return
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(r.Context(), b.o.PublishTimeout)
	err = e.client.Publish(ctx, topic, msg)
	cancel()
	b.m.publishDur.WithLabelValues(brokerName).Observe(time.Since(start).Seconds())
	if err != nil {
		st := publishStatus(err)
		b.m.published.WithLabelValues(brokerName, topic, publishResult(st)).Inc()
		writeError(w, st, "publish failed", brokerName, topic, err)
		return
	}
	b.m.published.WithLabelValues(brokerName, topic, resultOK).Inc()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"id": msg.Attrs["id"], "broker": brokerName, "topic": topic})
}

func writeError(w http.ResponseWriter, status int, msg, broker, topic string, cause error) {
	body := map[string]string{"error": msg}
	if broker != "" {
		body["broker"] = broker
	}
	if topic != "" {
		body["topic"] = topic
	}
	if cause != nil {
		body["cause"] = cause.Error()
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// brokenClient stands for a broker whose connection could not be set up.
type brokenClient struct{ err error }

func (c *brokenClient) Publish(context.Context, string, *Message) error {
	return fmt.Errorf("%w: %v", ErrUnavailable, c.err)
}
func (c *brokenClient) Consume(context.Context, *Subscription, func(context.Context, *Message) error) error {
	return c.err
}
func (c *brokenClient) Lag(context.Context, *Subscription) (int64, error) { return 0, c.err }
func (c *brokenClient) Close()                                            {}

// newClient connects to a broker of any type.
func newClient(bc Broker, log *slog.Logger) (client, error) {
	switch bc.Type {
	case Kafka:
		return newKafkaClient(bc, log)
	case NATS:
		return newNATSClient(bc, log)
	default:
		return newAMQPClient(bc, log)
	}
}
