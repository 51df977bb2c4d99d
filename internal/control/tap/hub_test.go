package tap

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/trellis-mesh/trellis/internal/telemetry/tap"
)

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "api", want: "service/default/api"},
		{in: "service/api", want: "service/default/api"},
		{in: "svc/shop/api", want: "service/shop/api"},
		{in: "dataplane/api-1", want: "dataplane/default/api-1"},
		{in: "dp/shop/api-1", want: "dataplane/shop/api-1"},
		{in: "route/x", err: `target: "route/x": want`},
		{in: "service/a/b/c", err: "want service/NS/NAME"},
		{in: "service//api", err: "empty namespace or name"},
		{in: "", err: "empty namespace or name"},
	} {
		got, err := ParseTarget(tc.in)
		switch {
		case tc.err != "":
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseTarget(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.err)
			}
		case err != nil || got.String() != tc.want:
			t.Errorf("ParseTarget(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestRequestValidate(t *testing.T) {
	r := Request{}
	if err := r.Validate(); err != nil || r.MaxRPS != DefaultMaxRPS {
		t.Fatalf("defaults: %v, maxRps %d", err, r.MaxRPS)
	}
	for _, tc := range []struct {
		r   Request
		err string
	}{
		{Request{MaxRPS: 1001}, "maxRps: 1001: must be 1..1000"},
		{Request{MaxRPS: -1}, "maxRps: -1"},
		{Request{PathPrefix: "api"}, `path: "api": must start with /`},
		{Request{Method: "GET /"}, "method:"},
		{Request{Body: -1}, "body: -1: must be 0 (off) or 1..4096 bytes"},
		{Request{Body: MaxBody + 1}, "body: 4097"},
	} {
		if err := tc.r.Validate(); err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%+v: %v; want %q", tc.r, err, tc.err)
		}
	}
}

// staticResolver answers from fixed data: the mesh's resources as the
// control plane would resolve them.
type staticResolver struct{ proxies map[string]Proxy }

func (s staticResolver) Proxy(node string) (Proxy, bool) { p, ok := s.proxies[node]; return p, ok }

func (s staticResolver) Target(t Target) (string, bool) {
	switch t.String() {
	case "service/default/api", "service/default/web", "dataplane/default/api-1":
		return "default", true
	}
	return "", false
}

func (s staticResolver) ServiceOfIdentity(mesh, id string) string {
	if mesh == "default" && id == "spiffe://td/default/web" {
		return "default/web"
	}
	return ""
}

func (s staticResolver) IdentityAt(mesh, addr string) string {
	if mesh == "default" && addr == "127.0.0.1:9081" {
		return "spiffe://td/default/api"
	}
	return ""
}

var resolver = staticResolver{proxies: map[string]Proxy{
	"default/api-1": {Mesh: "default", Dataplane: "default/api-1", Service: "default/api", Identity: "spiffe://td/default/api",
		Inbound: map[string][]string{"inbound:9081": {"default/api"}, "inbound:9090": {"default/admin"}}, Redact: []string{"x-secret"}},
	"default/web-1": {Mesh: "default", Dataplane: "default/web-1", Service: "default/web", Identity: "spiffe://td/default/web"},
	"default/db-1": {Mesh: "default", Dataplane: "default/db-1", Service: "default/db",
		Reads: map[string]bool{"default/db": true}}, // calls nothing
	"other/x-1": {Mesh: "other", Dataplane: "other/x-1"},
}}

// hubServer serves a Hub on a real gRPC server on a loopback port.
func hubServer(t *testing.T) (*Hub, *grpc.ClientConn) {
	t.Helper()
	h, err := New(Options{Resolver: resolver})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	tap.Register(g, h)
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return h, conn
}

// runProxy runs a proxy's tap stream for node on conn until stop.
func runProxy(t *testing.T, conn *grpc.ClientConn, node string) (p *tap.Tap, stop func()) {
	p = tap.New(0)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		p.Run(ctx, conn, node, tap.RunOptions{Backoff: func(time.Duration) time.Duration { return 10 * time.Millisecond }})
	})
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return p, stop
}

// openSession runs h.Tap(req) and returns its lines; stop ends it (the
// client leaving) and returns its error.
func openSession(t *testing.T, h *Hub, req Request) (lines <-chan Line, stop func() error) {
	ch := make(chan Line, 64)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- h.Tap(ctx, req, func(l Line) error { ch <- l; return nil })
	}()
	var once sync.Once
	var err error
	stop = func() error { once.Do(func() { cancel(); err = <-errc }); return err }
	t.Cleanup(func() { stop() })
	return ch, stop
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func nextLine(t *testing.T, lines <-chan Line) Line {
	t.Helper()
	select {
	case l := <-lines:
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("waited 10s for a line")
		return Line{}
	}
}

func req(inbound bool, cluster, vhost string) *tap.Request {
	return &tap.Request{Start: time.Now(), Inbound: inbound, Cluster: cluster, VirtualHost: vhost, Method: "GET", Path: "/x", Status: 200, GRPCStatus: -1}
}

// TestHub drives a Hub through real gRPC streams of real proxy taps: a
// service tap subscribes the serving proxy inbound and every proxy
// outbound, names services and identities, subscribes a proxy that
// connects (or reconnects) later, and cancels everything when the client
// leaves.
func TestHub(t *testing.T) {
	h, conn := hubServer(t)
	api, _ := runProxy(t, conn, "default/api-1")
	other, _ := runProxy(t, conn, "other/x-1")
	db, _ := runProxy(t, conn, "default/db-1")
	waitFor(t, "three proxy streams", func() bool { return len(h.Proxies()) == 3 })

	lines, stop := openSession(t, h, Request{Target: Target{KindService, "default", "api"}, Headers: true})
	if l := nextLine(t, lines); l.Notice != "tapping service default/api: 1 proxy serving it, 1 may call it" {
		t.Fatalf("first line %+v", l)
	}
	waitFor(t, "api-1's subscriptions", func() bool { return len(api.Subscriptions()) == 2 })
	if d := cmp.Diff([]string{"t1.in", "t1.out"}, api.Subscriptions()); d != "" {
		t.Errorf("subscriptions (-want +got):\n%s", d)
	}
	if other.Active() {
		t.Error("a proxy of another mesh was subscribed")
	}
	if db.Active() {
		t.Error("a proxy whose configuration cannot reach api was subscribed")
	}

	in := req(true, "inbound:9081", "inbound")
	in.RequestHeader = map[string][]string{"X-Secret": {"s"}}
	api.Observe(req(true, "inbound:9090", "inbound")) // another service's port
	api.Observe(in)
	l := nextLine(t, lines)
	e := l.Event
	if e == nil || e.Type != "event" || e.Dataplane != "default/api-1" || e.Direction != tap.Inbound ||
		e.Destination.Service != "default/api" || e.Destination.Identity != "spiffe://td/default/api" ||
		e.RequestHeaders["x-secret"] != tap.Redacted {
		t.Fatalf("inbound line %+v %+v", l, e)
	}

	// A proxy that connects later joins; its outbound side only.
	web, stopWeb := runProxy(t, conn, "default/web-1")
	if l := nextLine(t, lines); l.Notice != "proxy default/web-1 joined the tap" {
		t.Fatalf("line %+v", l)
	}
	waitFor(t, "web-1's subscription", func() bool { return slices.Equal(web.Subscriptions(), []string{"t1.out"}) })
	out := req(false, "default/api-v2:80", "default/api:80")
	out.Upstream = "127.0.0.1:9081"
	web.Observe(out)
	if e := nextLine(t, lines).Event; e == nil || e.Dataplane != "default/web-1" || e.Source.Service != "default/web" ||
		e.Source.Identity != "spiffe://td/default/web" || e.Destination.Service != "default/api" ||
		e.Destination.Identity != "spiffe://td/default/api" {
		t.Fatalf("outbound event %+v", e)
	}

	// A reconnect is subscribed again.
	stopWeb()
	waitFor(t, "web-1's stream to end", func() bool { return len(h.Proxies()) == 3 })
	if web.Active() {
		t.Error("subscriptions outlived their stream")
	}
	web2, _ := runProxy(t, conn, "default/web-1")
	waitFor(t, "web-1's subscription after reconnecting", func() bool { return web2.Active() })

	// The client leaves.
	if err := stop(); err != nil {
		t.Fatalf("Tap: %v", err)
	}
	waitFor(t, "every subscription to end", func() bool { return !api.Active() && !web2.Active() })
}

// TestHubRateCapAndDrops: a proxy's drops reach the client as a notice,
// and the hub's own cap holds however many proxies send.
func TestHubRateCapAndDrops(t *testing.T) {
	h, conn := hubServer(t)
	api, _ := runProxy(t, conn, "default/api-1")
	waitFor(t, "the proxy stream", func() bool { return len(h.Proxies()) == 1 })
	lines, _ := openSession(t, h, Request{Target: Target{KindDataplane, "default", "api-1"}, MaxRPS: 2})
	if l := nextLine(t, lines); l.Notice != "tapping dataplane default/api-1: 1 proxy" {
		t.Fatalf("first line %+v", l)
	}
	waitFor(t, "the subscription", api.Active)
	for range 10 {
		api.Observe(req(true, "inbound:9081", "inbound"))
	}
	events := 0
	for {
		l := nextLine(t, lines)
		if l.Event != nil {
			events++
			continue
		}
		if l.Notice != "8 events dropped by the rate cap" {
			t.Fatalf("notice %q; want 8 dropped", l.Notice)
		}
		break
	}
	if events != 2 {
		t.Errorf("%d events at maxRps 2; want the burst of 2", events)
	}
}

func TestHubStopAndNotFound(t *testing.T) {
	h, _ := hubServer(t)
	if err := h.Tap(context.Background(), Request{Target: Target{KindService, "default", "nope"}}, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown target: %v", err)
	}
	if err := h.Tap(context.Background(), Request{Target: Target{KindService, "default", "api"}, MaxRPS: 5000}, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad maxRps: %v", err)
	}
	lines, stop := openSession(t, h, Request{Target: Target{KindService, "default", "web"}})
	if l := nextLine(t, lines); l.Notice != "tapping service default/web: no proxy serves it yet; 0 proxies may call it" {
		t.Fatalf("first line %+v", l)
	}
	h.Stop()
	if l := nextLine(t, lines); l.Notice != "the control plane is stopping; tap ended" {
		t.Fatalf("line %+v", l)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestHubBody opens a tap asking for bodies: the proxy's subscription
// carries the limit over the real stream, so the event has the first
// bytes of the body the proxy captured.
func TestHubBody(t *testing.T) {
	h, conn := hubServer(t)
	api, _ := runProxy(t, conn, "default/api-1")
	waitFor(t, "api-1's stream", func() bool { return len(h.Proxies()) == 1 })
	lines, _ := openSession(t, h, Request{Target: Target{KindDataplane, "default", "api-1"}, Body: 4})
	nextLine(t, lines) // the opening notice
	waitFor(t, "api-1's subscription", api.Active)
	if n := api.BodyLimit(true, "GET", "api", "/x"); n != 4 {
		t.Fatalf("the proxy captures %d bytes of bodies, want 4", n)
	}
	r := req(true, "inbound:9081", "inbound")
	r.RequestBody, r.ResponseBody = tap.NewCapture(4, -1), tap.NewCapture(4, -1)
	_, _ = r.RequestBody.Write([]byte("hello"))
	api.Observe(r)
	e := nextLine(t, lines).Event
	if e == nil || e.RequestBody == nil || *e.RequestBody != "hell" || !e.RequestBodyTruncated || e.ResponseBody == nil || *e.ResponseBody != "" {
		t.Fatalf("event %+v", e)
	}
}
