package trace_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/trellis-mesh/trellis/internal/telemetry/trace"
	"github.com/trellis-mesh/trellis/internal/telemetry/trace/tracetest"
)

func newManager(t *testing.T) *trace.Manager {
	m := trace.NewManager(slog.New(slog.DiscardHandler))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = m.Shutdown(ctx)
	})
	return m
}

func request(h http.Header) *trace.Request {
	return &trace.Request{Header: h, Name: "ingress", Method: "GET", Path: "/x", Authority: "svc:8080", Proto: "HTTP/1.1",
		Peer: "10.0.0.1:5555", RequestID: "rid", Start: time.Now()}
}

func TestSpansReachCollector(t *testing.T) {
	rcv := tracetest.Start(t)
	m := newManager(t)
	p := m.Provider(trace.ProviderOptions{Endpoint: rcv.Addr, ServiceName: "web", NodeID: "node-1", BatchTimeout: 10 * time.Millisecond})
	tr := trace.New(trace.Options{Provider: p, Sampling: trace.FullSampling, SpawnUpstream: true, NodeID: "node-1",
		Tags: []trace.Tag{trace.LiteralTag("trellis.mesh", "default"), trace.HeaderTag("tenant", "x-tenant", "")}})

	h := http.Header{"X-Tenant": {"acme"}}
	s := tr.Start(request(h))
	if !s.Recording() {
		t.Fatal("full sampling: the request is not recorded")
	}
	out := http.Header{}
	cs := s.StartClient(&trace.Upstream{Cluster: "backend", Host: "127.0.0.1:9000", Authority: "backend", Method: "GET", Path: "/x", Start: time.Now()})
	cs.Inject(out)
	cs.End(503, nil)
	s.End(&trace.End{Status: 503, Flags: "URX", Cluster: "backend", UpstreamHost: "127.0.0.1:9000", Time: time.Now()})

	spans := rcv.WaitSpans(t, 2, 10*time.Second)
	byKind := map[tracev1.Span_SpanKind]tracetest.Span{}
	for _, sp := range spans {
		byKind[sp.Kind] = sp
	}
	server, client := byKind[tracev1.Span_SPAN_KIND_SERVER], byKind[tracev1.Span_SPAN_KIND_CLIENT]
	if server.ParentID != "" || client.ParentID != server.SpanID || client.TraceID != server.TraceID {
		t.Fatalf("parentage: server %+v client %+v", server, client)
	}
	if want := "00-" + client.TraceID + "-" + client.SpanID + "-01"; out.Get("Traceparent") != want {
		t.Errorf("injected traceparent %q, want the client span %q", out.Get("Traceparent"), want)
	}
	for k, want := range map[string]string{"http.request.method": "GET", "url.path": "/x", "server.address": "svc",
		"network.peer.address": "10.0.0.1", "http.response.status_code": "503", "response_flags": "URX",
		"upstream_cluster": "backend", "node_id": "node-1", "trellis.mesh": "default", "tenant": "acme", "guid:x-request-id": "rid"} {
		if got := server.Attrs[k]; got != want {
			t.Errorf("server span %s = %q, want %q", k, got, want)
		}
	}
	if client.Name != "router backend egress" || client.Attrs["upstream_cluster"] != "backend" || client.Attrs["network.peer.port"] != "9000" {
		t.Errorf("client span %+v", client)
	}
	if !server.Error || !client.Error || server.Service != "web" || server.Name != "ingress" {
		t.Errorf("status/resource: server %+v client %+v", server, client)
	}
}

func TestSamplingDecision(t *testing.T) {
	m := newManager(t)
	p := m.Provider(trace.ProviderOptions{Endpoint: "127.0.0.1:1", ExportTimeout: 100 * time.Millisecond})
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0"
	for _, tc := range []struct {
		name     string
		sampling trace.Sampling
		h        http.Header
		internal bool
		want     bool
	}{
		{name: "random 100%", sampling: trace.FullSampling, h: http.Header{}, want: true},
		{name: "random 0%", sampling: trace.Sampling{Client: trace.Million, Overall: trace.Million}, h: http.Header{}},
		{name: "client trace id", sampling: trace.Sampling{Client: trace.Million, Overall: trace.Million},
			h: http.Header{"X-Client-Trace-Id": {"x"}}, want: true},
		{name: "client sampling 0%", sampling: trace.Sampling{Overall: trace.Million}, h: http.Header{"X-Client-Trace-Id": {"x"}}},
		{name: "forced by an internal caller", sampling: trace.Sampling{Overall: trace.Million},
			h: http.Header{"X-Envoy-Force-Trace": {"1"}}, internal: true, want: true},
		{name: "force ignored from outside", sampling: trace.Sampling{Overall: trace.Million}, h: http.Header{"X-Envoy-Force-Trace": {"1"}}},
		{name: "overall caps", sampling: trace.Sampling{Client: trace.Million, Random: trace.Million}, h: http.Header{}},
		{name: "incoming sampled=0 wins", sampling: trace.FullSampling, h: http.Header{"Traceparent": {parent + "0"}}},
		{name: "incoming sampled=1 wins", sampling: trace.Sampling{}, h: http.Header{"Traceparent": {parent + "1"}}, want: true},
		{name: "b3 deferred uses local decision", sampling: trace.FullSampling,
			h: http.Header{"B3": {"4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"}}, want: true},
		{name: "b3 deny", sampling: trace.FullSampling, h: http.Header{"B3": {"0"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := trace.New(trace.Options{Provider: p, Sampling: tc.sampling})
			for range 50 {
				r := request(tc.h)
				r.Internal = tc.internal
				s := tr.Start(r)
				if s.Recording() != tc.want {
					t.Fatalf("recording = %v, want %v", s.Recording(), tc.want)
				}
				s.End(&trace.End{Status: 200, Flags: "-", Time: time.Now()})
			}
		})
	}
}

func TestUnsampledStillPropagates(t *testing.T) {
	rcv := tracetest.Start(t)
	m := newManager(t)
	p := m.Provider(trace.ProviderOptions{Endpoint: rcv.Addr, BatchTimeout: 10 * time.Millisecond})
	tr := trace.New(trace.Options{Provider: p, SpawnUpstream: true}) // 0% everywhere

	s := tr.Start(request(http.Header{}))
	out := http.Header{}
	cs := s.StartClient(&trace.Upstream{Cluster: "c", Host: "127.0.0.1:1"})
	cs.Inject(out)
	cs.End(200, nil)
	s.End(&trace.End{Status: 200, Time: time.Now()})
	tp := out.Get("Traceparent")
	sc := s.Context()
	if !strings.HasPrefix(tp, "00-"+sc.TraceID.String()+"-") || !strings.HasSuffix(tp, "-00") || strings.Contains(tp, sc.SpanID.String()) {
		t.Fatalf("traceparent %q: want a new unsampled context, child of server span %s", tp, sc.SpanID)
	}

	// An incoming unsampled context keeps its trace id.
	in := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
	s = tr.Start(request(http.Header{"Traceparent": {in}, "Tracestate": {"v=1"}}))
	cs = s.StartClient(&trace.Upstream{Cluster: "c"})
	cs.Inject(out)
	if tp := out.Get("Traceparent"); !strings.HasPrefix(tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-") || tp == in || out.Get("Tracestate") != "v=1" {
		t.Fatalf("propagated %v", out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(rcv.Spans()); n != 0 {
		t.Fatalf("%d spans exported for unsampled requests", n)
	}
}

// TestSlowCollectorDropsInsteadOfBlocking: a collector that does not
// answer fills the bounded queue; further spans are dropped and starting
// and ending spans never waits.
func TestSlowCollectorDropsInsteadOfBlocking(t *testing.T) {
	rcv := tracetest.Start(t)
	rcv.Block()
	m := newManager(t)
	const queue = 16
	p := m.Provider(trace.ProviderOptions{Endpoint: rcv.Addr, QueueSize: queue, BatchTimeout: time.Millisecond, ExportTimeout: time.Minute})
	tr := trace.New(trace.Options{Provider: p, Sampling: trace.FullSampling, SpawnUpstream: true})
	const n = 2000
	for range n {
		s := tr.Start(request(http.Header{}))
		cs := s.StartClient(&trace.Upstream{Cluster: "c"})
		cs.End(200, nil)
		s.End(&trace.End{Status: 200, Time: time.Now()})
	}
	rcv.Unblock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	got := len(rcv.Spans())
	if got == 0 || got >= 2*n || got > 2*queue+2*512 {
		t.Fatalf("received %d of %d spans; want some, and at most about the queue (%d) plus batches in flight", got, 2*n, queue)
	}
}

// TestCollectorDown: nothing listens at the endpoint; requests go on and
// shutdown is bounded.
func TestCollectorDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	m := newManager(t)
	p := m.Provider(trace.ProviderOptions{Endpoint: dead, QueueSize: 8, BatchTimeout: time.Millisecond, ExportTimeout: 200 * time.Millisecond})
	tr := trace.New(trace.Options{Provider: p, Sampling: trace.FullSampling})
	for range 500 {
		s := tr.Start(request(http.Header{}))
		s.End(&trace.End{Status: 200, Time: time.Now()})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = m.Shutdown(ctx)
	if ctx.Err() != nil {
		t.Fatal("shutdown with the collector down took the whole timeout")
	}
	if spans, failures := p.Exported(); spans != 0 || failures == 0 {
		t.Fatalf("exported %d spans, %d failures; want 0 and some", spans, failures)
	}
}

func TestManagerCommitStopsUnused(t *testing.T) {
	rcv := tracetest.Start(t)
	m := newManager(t)
	a := m.Provider(trace.ProviderOptions{Endpoint: rcv.Addr, ServiceName: "a"})
	m.Commit()
	if b := m.Provider(trace.ProviderOptions{Endpoint: rcv.Addr, ServiceName: "a"}); b != a {
		t.Fatal("equal options: want the same provider")
	}
	m.Provider(trace.ProviderOptions{Endpoint: rcv.Addr, ServiceName: "b"})
	m.Commit()
	m.Provider(trace.ProviderOptions{Endpoint: rcv.Addr, ServiceName: "b"})
	m.Commit() // "a" was not asked for: stopped
	if c := m.Provider(trace.ProviderOptions{Endpoint: rcv.Addr, ServiceName: "a"}); c == a {
		t.Fatal("a provider no snapshot uses survived Commit")
	}
}
