package tap

import (
	"crypto/tls"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-mesh/trellis/internal/telemetry/accesslog"
)

// DefaultQueue is the length of a Tap's event queue when New is given
// none.
const DefaultQueue = 1024

// Redacted replaces the value of a redacted header.
const Redacted = "REDACTED"

// DefaultRedact are the headers whose values are always redacted
// (lower case).
var DefaultRedact = []string{"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}

// Request is what the connection manager knows of a request it has
// finished. It fills one only while the Tap is Active; Observe reads it
// and keeps nothing of it.
type Request struct {
	Start    time.Time
	Duration time.Duration
	// Inbound: the request came in on an inbound listener (the sidecar
	// serves it to its application).
	Inbound bool
	// VirtualHost, Cluster and Route name what routing picked ("" when
	// nothing matched).
	VirtualHost, Cluster, Route        string
	Method, Authority, Path, RequestID string
	// Remote is the downstream address, Local the address it came in
	// on, Upstream the host the request was sent to.
	Remote, Local, Upstream string
	// TLS is the downstream connection's TLS state (nil: plaintext).
	TLS *tls.ConnectionState
	// UpstreamTLS: the cluster speaks TLS to its hosts.
	UpstreamTLS bool
	Status      int
	// GRPCStatus is the grpc-status sent, or -1 for a request that is
	// not gRPC.
	GRPCStatus        int
	BytesIn, BytesOut int64
	Flags             accesslog.Flags
	Reason            string
	// RequestHeader and ResponseHeader are read only with a
	// subscription that captures headers.
	RequestHeader, ResponseHeader http.Header
	// RequestBody and ResponseBody hold the first bytes of the bodies
	// when BodyLimit asked for them at the request's start (nil: not
	// captured).
	RequestBody, ResponseBody *Capture
}

// Tap is a proxy's set of tap subscriptions. The zero value is not
// usable; create one with New. Methods are safe for concurrent use.
type Tap struct {
	subs  atomic.Pointer[subSet] // nil while there is none
	mu    sync.Mutex             // serializes changes of subs
	queue chan *FromProxy
}

// subSet is an immutable list of the open subscriptions.
type subSet struct {
	all  []*sub
	body []*sub // those that capture bodies
}

// newSubSet returns the set of list, or nil for an empty list.
func newSubSet(list []*sub) *subSet {
	if len(list) == 0 {
		return nil
	}
	set := &subSet{all: list}
	for _, s := range list {
		if s.Body > 0 {
			set.body = append(set.body, s)
		}
	}
	return set
}

// sub is one subscription with its rate limiter and drop counter.
type sub struct {
	Subscription
	method   string
	services []string // "namespace/name:" prefixes of Match.Services
	redact   map[string]bool

	mu     sync.Mutex
	tokens float64
	last   time.Time

	dropped atomic.Int64
}

// New returns a Tap whose event queue holds queue events (zero or less:
// DefaultQueue).
func New(queue int) *Tap {
	if queue <= 0 {
		queue = DefaultQueue
	}
	return &Tap{queue: make(chan *FromProxy, queue)}
}

// Active reports whether any subscription is open: the connection
// manager's only cost per request while none is.
func (t *Tap) Active() bool { return t.subs.Load() != nil }

// Subscribe opens s, replacing a subscription of the same ID.
func (t *Tap) Subscribe(s Subscription) {
	if s.MaxRPS <= 0 {
		s.MaxRPS = DefaultMaxRPS
	}
	s.Body = min(max(s.Body, 0), MaxBody)
	n := &sub{Subscription: s, method: strings.ToUpper(s.Match.Method), redact: map[string]bool{},
		tokens: float64(s.MaxRPS), last: time.Now()}
	for _, svc := range s.Match.Services {
		n.services = append(n.services, svc+":")
	}
	for _, h := range DefaultRedact {
		n.redact[h] = true
	}
	for _, h := range s.Redact {
		n.redact[strings.ToLower(h)] = true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var next []*sub
	if cur := t.subs.Load(); cur != nil {
		next = slices.DeleteFunc(slices.Clone(cur.all), func(o *sub) bool { return o.ID == s.ID })
	}
	t.subs.Store(newSubSet(append(next, n)))
}

// Cancel ends the subscription id (a no-op for an unknown id).
func (t *Tap) Cancel(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := t.subs.Load()
	if cur == nil {
		return
	}
	t.subs.Store(newSubSet(slices.DeleteFunc(slices.Clone(cur.all), func(o *sub) bool { return o.ID == id })))
}

// CancelAll ends every subscription (the stream to the control plane
// broke: nobody reads the events any more).
func (t *Tap) CancelAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.subs.Store(nil)
	for {
		select {
		case <-t.queue:
		default:
			return
		}
	}
}

// Subscriptions returns the IDs of the open subscriptions.
func (t *Tap) Subscriptions() []string {
	cur := t.subs.Load()
	if cur == nil {
		return nil
	}
	ids := make([]string, len(cur.all))
	for i, s := range cur.all {
		ids[i] = s.ID
	}
	return ids
}

// Events is the queue of matched events, read by the stream to the
// control plane (Run). Exposed for tests of the matching.
func (t *Tap) Events() <-chan *FromProxy { return t.queue }

// Observe matches r against the open subscriptions and queues an event
// for each that matches and has a token left; it never blocks.
func (t *Tap) Observe(r *Request) {
	cur := t.subs.Load()
	if cur == nil {
		return
	}
	for _, s := range cur.all {
		if !s.matches(r) {
			continue
		}
		if !s.allow(time.Now()) {
			s.dropped.Add(1)
			continue
		}
		select {
		case t.queue <- &FromProxy{Sub: s.ID, Event: t.event(s, r)}:
		default:
			s.dropped.Add(1)
		}
	}
}

// TakeDropped returns, per open subscription with drops, the drops
// since the last call.
func (t *Tap) TakeDropped() map[string]int64 {
	cur := t.subs.Load()
	if cur == nil {
		return nil
	}
	var out map[string]int64
	for _, s := range cur.all {
		if n := s.dropped.Swap(0); n > 0 {
			if out == nil {
				out = map[string]int64{}
			}
			out[s.ID] += n
		}
	}
	return out
}

func (s *sub) matches(r *Request) bool {
	m := &s.Match
	if !s.mayMatch(r.Inbound, r.Method, r.Authority, r.Path) {
		return false
	}
	if r.Inbound && len(m.Clusters) > 0 && !slices.Contains(m.Clusters, r.Cluster) {
		return false
	}
	if !r.Inbound && len(s.services) > 0 && !s.callsService(r) {
		return false
	}
	return true
}

func (s *sub) callsService(r *Request) bool {
	for _, p := range s.services {
		if strings.HasPrefix(r.VirtualHost, p) || strings.HasPrefix(r.Cluster, p) {
			return true
		}
	}
	return false
}

// allow takes a token of the subscription's bucket: MaxRPS tokens a
// second, at most MaxRPS saved.
func (s *sub) allow(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	rate := float64(s.MaxRPS)
	if el := now.Sub(s.last); el > 0 {
		s.tokens = min(rate, s.tokens+el.Seconds()*rate)
		s.last = now
	}
	if s.tokens < 1 {
		return false
	}
	s.tokens--
	return true
}

// event builds the Event of r for s; the control plane fills in the
// dataplane (the stream's node) and the names it resolves.
func (t *Tap) event(s *sub, r *Request) *Event {
	e := &Event{
		Time: r.Start.UTC(), Direction: Outbound,
		Route: r.Route, RequestID: r.RequestID, Method: r.Method, Authority: r.Authority, Path: r.Path,
		Status: r.Status, DurationMs: float64(r.Duration.Microseconds()) / 1000,
		BytesIn: r.BytesIn, BytesOut: r.BytesOut, ResponseFlags: r.Flags.String(), Reason: r.Reason,
		Source:      Source{Address: r.Remote},
		Destination: Destination{Cluster: r.Cluster},
	}
	if r.GRPCStatus >= 0 {
		g := r.GRPCStatus
		e.GRPCStatus = &g
	}
	if r.Inbound {
		e.Direction = Inbound
		e.Source.Identity = PeerIdentity(r.TLS)
		e.Destination.Address = r.Local
		e.TLS = r.TLS != nil
	} else {
		e.Destination.Address = r.Upstream
		e.Destination.Service = ServiceOf(r.VirtualHost)
		e.TLS = r.UpstreamTLS
	}
	if s.Headers {
		e.RequestHeaders = s.capture(r.RequestHeader)
		e.ResponseHeaders = s.capture(r.ResponseHeader)
	}
	if s.Body > 0 {
		s.bodies(e, r)
	}
	return e
}

// capture copies h with lower-case names, redacting s's headers.
func (s *sub) capture(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		k = strings.ToLower(k)
		if s.redact[k] {
			out[k] = Redacted
			continue
		}
		out[k] = strings.Join(v, ", ")
	}
	return out
}

// PeerIdentity returns the first URI SAN (the SPIFFE ID) of the peer's
// certificate, or "".
func PeerIdentity(cs *tls.ConnectionState) string {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return ""
	}
	for _, u := range cs.PeerCertificates[0].URIs {
		if u.Scheme == "spiffe" {
			return u.String()
		}
	}
	return ""
}

// ServiceOf returns "namespace/name" of a mesh virtual host or cluster
// name ("namespace/name:port"), or "" for another name.
func ServiceOf(name string) string {
	i := strings.LastIndexByte(name, ':')
	if i < 0 || !strings.Contains(name[:i], "/") {
		return ""
	}
	return name[:i]
}
