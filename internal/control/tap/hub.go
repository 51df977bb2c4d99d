package tap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/trellis-mesh/trellis/internal/telemetry/tap"
)

// Proxy is what the Hub needs to know of a connected proxy.
type Proxy struct {
	Mesh string
	// Dataplane is the proxy's Dataplane, namespace/name.
	Dataplane string
	// Service is the service its identity names, namespace/name.
	Service string
	// Identity is its SPIFFE ID when the mesh has mutual TLS, else "".
	Identity string
	// Inbound maps each inbound cluster ("inbound:PORT") to the Services
	// (namespace/name) the port serves.
	Inbound map[string][]string
	// Redact are the header names the mesh redacts besides the defaults
	// (Mesh spec.tap.redactHeaders).
	Redact []string
	// Reads are the Services (namespace/name) the proxy's configuration
	// can send requests to: a service tap subscribes its outbound side
	// only when the Service is among them. Nil means unknown: subscribe.
	Reads map[string]bool
}

// Resolver answers the Hub from the control plane's resources. Methods
// are called concurrently.
type Resolver interface {
	// Proxy describes the proxy with the given xDS node id.
	Proxy(node string) (Proxy, bool)
	// Target returns the mesh of the Service or Dataplane t names, false
	// when it does not exist.
	Target(t Target) (mesh string, ok bool)
	// ServiceOfIdentity returns the Service (namespace/name) of the
	// proxies of mesh with the given SPIFFE ID, or "".
	ServiceOfIdentity(mesh, id string) string
	// IdentityAt returns the SPIFFE ID of the proxy of mesh whose inbound
	// port is at addr ("ip:port"), or "" (none, or no mutual TLS).
	IdentityAt(mesh, addr string) string
}

// Options configure a Hub.
type Options struct {
	// Resolver is required.
	Resolver Resolver
	// Logger receives the hub's logs (nil: discarded).
	Logger *slog.Logger
}

// Hub holds the proxies' tap streams and the open taps.
type Hub struct {
	res  Resolver
	log  *slog.Logger
	done chan struct{}
	stop sync.Once

	mu       sync.Mutex
	proxies  map[string]*proxyStream // by node id: the latest stream
	sessions map[string]*session     // by id
	next     uint64
}

// proxyStream is one proxy's open stream.
type proxyStream struct {
	node   string
	out    chan *tap.ToProxy
	cancel context.CancelFunc
	subs   map[string]bool // subscriptions sent (guarded by Hub.mu)
}

// outQueue bounds the control messages waiting for one proxy; a proxy
// that falls this far behind has its stream closed (it reconnects and is
// subscribed afresh).
const outQueue = 256

// New returns a Hub.
func New(opts Options) (*Hub, error) {
	if opts.Resolver == nil {
		return nil, errors.New("tap: a resolver is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Hub{res: opts.Resolver, log: opts.Logger, done: make(chan struct{}),
		proxies: map[string]*proxyStream{}, sessions: map[string]*session{}}, nil
}

var _ tap.Watcher = (*Hub)(nil)

// Stop ends every open tap (the control plane is stopping, so that API
// streams do not hold up its shutdown).
func (h *Hub) Stop() { h.stop.Do(func() { close(h.done) }) }

// Proxies returns the node ids of the proxies with an open tap stream.
func (h *Hub) Proxies() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Sorted(maps.Keys(h.proxies))
}

// Watch serves one proxy's tap stream (tap.Watcher).
func (h *Hub) Watch(ss *tap.ServerStream) error {
	first, err := ss.Recv()
	if err != nil {
		return err
	}
	if first.Node == "" {
		return status.Error(codes.InvalidArgument, "node: required on the first message")
	}
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	ps := &proxyStream{node: first.Node, out: make(chan *tap.ToProxy, outQueue), cancel: cancel, subs: map[string]bool{}}
	h.mu.Lock()
	if old := h.proxies[ps.node]; old != nil {
		old.cancel() // a reconnect overtook the old stream
	}
	h.proxies[ps.node] = ps
	for _, s := range h.sessions {
		h.subscribeLocked(s, ps)
	}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		if h.proxies[ps.node] == ps {
			delete(h.proxies, ps.node)
		}
		h.mu.Unlock()
	}()

	errc := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case m := <-ps.out:
				if err := ss.Send(m); err != nil {
					errc <- err
					cancel()
					return
				}
			}
		}
	})
	for {
		m, err := ss.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			select {
			case err = <-errc:
			default:
			}
			if ctx.Err() != nil && ss.Context().Err() == nil {
				return status.Error(codes.Aborted, "tap stream replaced or too far behind")
			}
			return err
		}
		if m.Sub == "" {
			continue
		}
		id, _, _ := strings.Cut(m.Sub, ".")
		h.mu.Lock()
		s := h.sessions[id]
		h.mu.Unlock()
		if s == nil {
			continue // a tap that just ended
		}
		if m.Dropped > 0 {
			s.dropped.Add(m.Dropped)
		}
		if m.Event != nil {
			select {
			case s.events <- delivered{node: ps.node, ev: m.Event}:
			default:
				s.dropped.Add(1)
			}
		}
	}
}

// sendLocked queues m for ps; a proxy too far behind loses its stream.
func (h *Hub) sendLocked(ps *proxyStream, m *tap.ToProxy) {
	select {
	case ps.out <- m:
	default:
		h.log.Warn("tap stream too far behind; closing it", "node", ps.node)
		ps.cancel()
	}
}

// subscribeLocked sends ps the subscriptions s needs from it; it returns
// the directions subscribed.
func (h *Hub) subscribeLocked(s *session, ps *proxyStream) (in, out bool) {
	for _, sub := range h.plan(s, ps.node) {
		ps.subs[sub.ID] = true
		h.sendLocked(ps, &tap.ToProxy{Subscribe: &sub})
		switch sub.Match.Direction {
		case tap.Inbound:
			in = true
		case tap.Outbound:
			out = true
		default:
			in, out = true, true
		}
	}
	if in || out {
		select {
		case s.joined <- ps.node:
		default:
		}
	}
	return in, out
}

// plan returns the subscriptions s needs from the proxy node.
func (h *Hub) plan(s *session, node string) []tap.Subscription {
	p, ok := h.res.Proxy(node)
	if !ok || p.Mesh != s.mesh {
		return nil
	}
	r := &s.req
	base := tap.Subscription{MaxRPS: r.MaxRPS, Headers: r.Headers, Body: r.Body, Redact: p.Redact,
		Match: tap.Match{PathPrefix: r.PathPrefix, Method: r.Method, Authority: r.Authority}}
	key := r.Target.Namespace + "/" + r.Target.Name
	if r.Target.Kind == KindDataplane {
		if p.Dataplane != key {
			return nil
		}
		base.ID = s.id + ".all"
		return []tap.Subscription{base}
	}
	var subs []tap.Subscription
	var clusters []string
	for c, svcs := range p.Inbound {
		if slices.Contains(svcs, key) {
			clusters = append(clusters, c)
		}
	}
	if len(clusters) > 0 {
		in := base
		in.ID, in.Match.Direction, in.Match.Clusters = s.id+".in", tap.Inbound, slices.Sorted(slices.Values(clusters))
		subs = append(subs, in)
	}
	if p.Reads != nil && !p.Reads[key] {
		return subs // its configuration cannot reach the Service
	}
	out := base
	out.ID, out.Match.Direction, out.Match.Services = s.id+".out", tap.Outbound, []string{key}
	return append(subs, out)
}

// delivered is an event with the proxy it came from.
type delivered struct {
	node string
	ev   *tap.Event
}

// session is one open tap.
type session struct {
	id      string
	req     Request
	mesh    string
	events  chan delivered
	joined  chan string
	dropped atomic.Int64
}

// sessionQueue bounds the events waiting for one API client.
const sessionQueue = 256

// Tap serves req until ctx ends (the API client left) or the Hub stops:
// it calls emit for each line of the stream, serially; an emit error ends
// the tap with that error. It returns ErrInvalid or ErrNotFound (wrapped)
// before the first emit for a bad request.
func (h *Hub) Tap(ctx context.Context, req Request, emit func(Line) error) error {
	if err := req.Validate(); err != nil {
		return err
	}
	mesh, ok := h.res.Target(req.Target)
	if !ok {
		return fmt.Errorf("%w: %s %s/%s", ErrNotFound, req.Target.Kind, req.Target.Namespace, req.Target.Name)
	}
	s := &session{req: req, mesh: mesh, events: make(chan delivered, sessionQueue), joined: make(chan string, 64)}
	var reached, inbound int
	h.mu.Lock()
	h.next++
	s.id = "t" + strconv.FormatUint(h.next, 10)
	h.sessions[s.id] = s
	for _, ps := range h.proxies {
		in, out := h.subscribeLocked(s, ps)
		if in || out {
			reached++
		}
		if in {
			inbound++
		}
	}
	h.mu.Unlock()
	defer h.end(s)
	for len(s.joined) > 0 { // counted above
		<-s.joined
	}
	what := req.Target.Kind + " " + req.Target.Namespace + "/" + req.Target.Name
	msg := fmt.Sprintf("tapping %s: %s", what, proxies(reached))
	switch {
	case req.Target.Kind == KindService && inbound == 0:
		msg = fmt.Sprintf("tapping %s: no proxy serves it yet; %s may call it", what, proxies(reached))
	case reached == 0:
		msg = fmt.Sprintf("tapping %s: its proxy is not connected yet; waiting", what)
	case req.Target.Kind == KindService:
		msg = fmt.Sprintf("tapping %s: %s serving it, %d may call it", what, proxies(inbound), reached)
	}
	if err := emit(Line{Notice: msg}); err != nil {
		return err
	}
	e := enricher{h: h, mesh: mesh, proxies: map[string]Proxy{}, ids: map[string]string{}, addrs: map[string]string{}}
	bucket := newBucket(req.MaxRPS, time.Now())
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-h.done:
			return emit(Line{Notice: "the control plane is stopping; tap ended"})
		case d := <-s.events:
			if !bucket.allow(time.Now()) {
				s.dropped.Add(1)
				continue
			}
			e.enrich(d)
			if err := emit(Line{Event: d.ev}); err != nil {
				return err
			}
		case node := <-s.joined:
			if err := emit(Line{Notice: "proxy " + node + " joined the tap"}); err != nil {
				return err
			}
		case <-tick.C:
			if n := s.dropped.Swap(0); n > 0 {
				if err := emit(Line{Notice: fmt.Sprintf("%d events dropped by the rate cap", n)}); err != nil {
					return err
				}
			}
		}
	}
}

// proxies renders a count of proxies.
func proxies(n int) string {
	if n == 1 {
		return "1 proxy"
	}
	return strconv.Itoa(n) + " proxies"
}

// end cancels s's subscriptions on every proxy.
func (h *Hub) end(s *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.sessions, s.id)
	for _, ps := range h.proxies {
		for id := range ps.subs {
			if sid, _, _ := strings.Cut(id, "."); sid == s.id {
				delete(ps.subs, id)
				h.sendLocked(ps, &tap.ToProxy{Cancel: id})
			}
		}
	}
}

// enricher fills in what the proxies could not know, with caches for one
// tap.
type enricher struct {
	h       *Hub
	mesh    string
	proxies map[string]Proxy
	ids     map[string]string // SPIFFE ID → service
	addrs   map[string]string // upstream address → SPIFFE ID
}

func (e *enricher) enrich(d delivered) {
	p, ok := e.proxies[d.node]
	if !ok {
		p, _ = e.h.res.Proxy(d.node)
		e.proxies[d.node] = p
	}
	ev := d.ev
	ev.Type, ev.Dataplane = "event", d.node
	if p.Dataplane != "" {
		ev.Dataplane = p.Dataplane
	}
	if ev.Direction == tap.Inbound {
		if svcs := p.Inbound[ev.Destination.Cluster]; len(svcs) > 0 {
			ev.Destination.Service = svcs[0]
		}
		ev.Destination.Identity = p.Identity
		if id := ev.Source.Identity; id != "" {
			svc, ok := e.ids[id]
			if !ok {
				svc = e.h.res.ServiceOfIdentity(e.mesh, id)
				e.ids[id] = svc
			}
			ev.Source.Service = svc
		}
		return
	}
	ev.Source.Service, ev.Source.Identity = p.Service, p.Identity
	if a := ev.Destination.Address; a != "" {
		id, ok := e.addrs[a]
		if !ok {
			id = e.h.res.IdentityAt(e.mesh, a)
			e.addrs[a] = id
		}
		ev.Destination.Identity = id
	}
}

// bucket is a token bucket: rate tokens a second, at most rate saved.
type bucket struct {
	rate, tokens float64
	last         time.Time
}

func newBucket(rate int, now time.Time) *bucket {
	return &bucket{rate: float64(rate), tokens: float64(rate), last: now}
}

func (b *bucket) allow(now time.Time) bool {
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(b.rate, b.tokens+el.Seconds()*b.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
