package proxy_test

import (
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/trellis-mesh/trellis/internal/proxy"
	"github.com/trellis-mesh/trellis/internal/telemetry/trace/tracetest"
	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

// tracedBootstrap is one proxy with tracing to the "otel" cluster: a
// listener "l" whose route sends everything to the "up" cluster.
const tracedBootstrap = `node: {id: {{.Node}}}
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {{.Node}}
          tracing:
            provider:
              name: envoy.tracers.opentelemetry
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                grpc_service: {envoy_grpc: {cluster_name: otel}}
                service_name: {{.Service}}
            spawn_upstream_span: true
            random_sampling: {value: {{.Random}}}
            custom_tags:
            - {tag: trellis.mesh, literal: {value: demo}}
            - {tag: trellis.service, literal: {value: {{.Service}}}}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: [{name: {{.Route}}, match: {prefix: "/"}, route: {cluster: up{{.RouteExtra}}}}]
          http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
  clusters:
  - name: up
    load_assignment: {cluster_name: up, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .Upstream}}}}]}]}
  - name: otel
    load_assignment: {cluster_name: otel, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .Collector}}}}]}]}
`

type tracedProxy struct {
	Node, Service, Route string
	Random               float64
	RouteExtra           string
	Upstream, Collector  string
}

// startTraced starts a proxy from tracedBootstrap and returns its
// listener address.
func startTraced(t *testing.T, c tracedProxy) string {
	t.Helper()
	p := startProxy(t, tracedBootstrap, c)
	return p.ListenerAddrs()["l"]
}

// chain starts client → A (outbound) → B (inbound) → echo and returns A's
// address.
func chain(t *testing.T, collector string, random float64) string {
	t.Helper()
	app := startEcho(t, "app")
	b := startTraced(t, tracedProxy{Node: "node-b", Service: "b", Route: "inbound", Random: random, Upstream: app.Addr(), Collector: collector})
	return startTraced(t, tracedProxy{Node: "node-a", Service: "a", Route: "outbound", Random: random, Upstream: b, Collector: collector})
}

// find returns the one span of service and kind in spans of trace id.
func find(t *testing.T, spans []tracetest.Span, traceID, service string, kind tracev1.Span_SpanKind) tracetest.Span {
	t.Helper()
	var out []tracetest.Span
	for _, s := range spans {
		if s.TraceID == traceID && s.Service == service && s.Kind == kind {
			out = append(out, s)
		}
	}
	if len(out) != 1 {
		t.Fatalf("%d %s spans of service %q in trace %s, want 1; all: %+v", len(out), kind, service, traceID, spans)
	}
	return out[0]
}

func traceOf(spans []tracetest.Span, traceID string) []tracetest.Span {
	var out []tracetest.Span
	for _, s := range spans {
		if s.TraceID == traceID {
			out = append(out, s)
		}
	}
	return out
}

// parseTraceparent splits a version-00 traceparent.
func parseTraceparent(t *testing.T, v string) (traceID, spanID, flags string) {
	t.Helper()
	p := strings.Split(v, "-")
	if len(p) != 4 || p[0] != "00" || len(p[1]) != 32 || len(p[2]) != 16 {
		t.Fatalf("traceparent %q", v)
	}
	return p[1], p[2], p[3]
}

// waitTrace waits for want spans of traceID.
func waitTrace(t *testing.T, rcv *tracetest.Receiver, traceID string, want int) []tracetest.Span {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		n := len(rcv.Spans())
		if got := traceOf(rcv.Spans(), traceID); len(got) >= want {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s: want %d spans, have %+v", traceID, want, rcv.Spans())
		}
		rcv.WaitSpans(t, n+1, time.Until(deadline))
	}
}

// TestTracingTwoProxies: one request through two proxies is one trace,
// A server → A client → B server → B client, and the upstream sees B's
// client span as its parent.
func TestTracingTwoProxies(t *testing.T) {
	rcv := tracetest.Start(t)
	a := chain(t, rcv.Addr, 100)

	for _, tc := range []struct {
		name     string
		hdr      map[string]string
		parentID string // the A server span's parent; "" for a new trace
	}{
		{name: "new trace", hdr: nil},
		{name: "incoming traceparent", hdr: map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "vendor=x"},
			parentID: "00f067aa0ba902b7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, er, body := get(t, http.DefaultClient, "http://"+a+"/hello?x=1", tc.hdr)
			if resp.StatusCode != 200 || er.Name != "app" {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			up := http.Header(er.Headers)
			traceID, parent, flags := parseTraceparent(t, up.Get("Traceparent"))
			if flags != "01" {
				t.Fatalf("upstream traceparent %q: not sampled", up.Get("Traceparent"))
			}
			if tc.parentID != "" && traceID != "4bf92f3577b34da6a3ce929d0e0e4736" {
				t.Fatalf("trace id not preserved: %s", traceID)
			}
			if tc.hdr != nil && up.Get("Tracestate") != "vendor=x" {
				t.Errorf("tracestate %q not passed on", up.Get("Tracestate"))
			}
			spans := waitTrace(t, rcv, traceID, 4)
			if len(spans) != 4 {
				t.Fatalf("want 4 spans, got %+v", spans)
			}
			aServer := find(t, spans, traceID, "a", tracev1.Span_SPAN_KIND_SERVER)
			aClient := find(t, spans, traceID, "a", tracev1.Span_SPAN_KIND_CLIENT)
			bServer := find(t, spans, traceID, "b", tracev1.Span_SPAN_KIND_SERVER)
			bClient := find(t, spans, traceID, "b", tracev1.Span_SPAN_KIND_CLIENT)
			for _, c := range []struct {
				what          string
				parent, child tracetest.Span
			}{{"A client", aServer, aClient}, {"B server", aClient, bServer}, {"B client", bServer, bClient}} {
				if c.child.ParentID != c.parent.SpanID {
					t.Errorf("%s: parent %s, want %s", c.what, c.child.ParentID, c.parent.SpanID)
				}
			}
			if aServer.ParentID != tc.parentID {
				t.Errorf("A server parent %q, want %q", aServer.ParentID, tc.parentID)
			}
			if parent != bClient.SpanID {
				t.Errorf("upstream's parent span %s, want B's client span %s", parent, bClient.SpanID)
			}
			if aServer.Name != "outbound" || bServer.Name != "inbound" || aClient.Name != "router up egress" {
				t.Errorf("names: %q %q %q", aServer.Name, bServer.Name, aClient.Name)
			}
			want := map[string]string{"http.request.method": "GET", "url.path": "/hello", "http.response.status_code": "200",
				"node_id": "node-b", "upstream_cluster": "up", "trellis.mesh": "demo", "trellis.service": "b", "response_flags": "-",
				"guid:x-request-id": up.Get("X-Request-Id")}
			for k, v := range want {
				if bServer.Attrs[k] != v {
					t.Errorf("B server span %s = %q, want %q", k, bServer.Attrs[k], v)
				}
			}
			if bClient.Attrs["network.peer.address"] != "127.0.0.1" || bClient.Attrs["trellis.service"] != "b" {
				t.Errorf("B client span attributes %v", bClient.Attrs)
			}
		})
	}
}

// TestTracingIncomingUnsampled: a traceparent with sampled=0 is respected
// at 100% random sampling (Envoy's OpenTelemetry tracer keeps the parent's
// decision): no spans, and the context still reaches the upstream.
func TestTracingIncomingUnsampled(t *testing.T) {
	rcv := tracetest.Start(t)
	a := chain(t, rcv.Addr, 100)
	const tid = "11111111111111111111111111111111"
	_, er, _ := get(t, http.DefaultClient, "http://"+a+"/", map[string]string{"traceparent": "00-" + tid + "-2222222222222222-00"})
	gotTID, parent, flags := parseTraceparent(t, http.Header(er.Headers).Get("Traceparent"))
	if gotTID != tid || flags != "00" || parent == "2222222222222222" {
		t.Fatalf("upstream traceparent %q", http.Header(er.Headers).Get("Traceparent"))
	}
	// A sampled request afterwards: its spans are queued behind any the
	// unsampled one would have made, in both proxies.
	_, er, _ = get(t, http.DefaultClient, "http://"+a+"/", nil)
	marker, _, _ := parseTraceparent(t, http.Header(er.Headers).Get("Traceparent"))
	waitTrace(t, rcv, marker, 4)
	if got := traceOf(rcv.Spans(), tid); len(got) != 0 {
		t.Fatalf("unsampled trace recorded: %+v", got)
	}
}

// TestTracingZeroSampling: 0% random sampling with no incoming context
// records nothing, yet (as Envoy's OpenTelemetry tracer does) upstreams
// still get a fresh, unsampled traceparent and an x-request-id; a client
// asking with x-client-trace-id is still traced (client_sampling 100%).
func TestTracingZeroSampling(t *testing.T) {
	rcv := tracetest.Start(t)
	a := chain(t, rcv.Addr, 0)
	_, er, _ := get(t, http.DefaultClient, "http://"+a+"/", nil)
	up := http.Header(er.Headers)
	unsampled, _, flags := parseTraceparent(t, up.Get("Traceparent"))
	if flags != "00" || up.Get("X-Request-Id") == "" {
		t.Fatalf("upstream headers %v", up)
	}
	_, er, _ = get(t, http.DefaultClient, "http://"+a+"/", map[string]string{"x-client-trace-id": "debug-1"})
	marker, _, flags := parseTraceparent(t, http.Header(er.Headers).Get("Traceparent"))
	if flags != "01" {
		t.Fatalf("x-client-trace-id at client_sampling 100%%: not sampled (%s)", flags)
	}
	waitTrace(t, rcv, marker, 4)
	if got := traceOf(rcv.Spans(), unsampled); len(got) != 0 {
		t.Fatalf("0%% sampling recorded: %+v", got)
	}
}

// TestTracingB3: B3 in, B3 out (and W3C too), multi-header and single.
func TestTracingB3(t *testing.T) {
	rcv := tracetest.Start(t)
	a := chain(t, rcv.Addr, 100)
	const tid = "463ac35c9f6413ad48485a3953bb6124"

	_, er, _ := get(t, http.DefaultClient, "http://"+a+"/", map[string]string{
		"x-b3-traceid": tid, "x-b3-spanid": "a2fb4a1d1a96d312", "x-b3-sampled": "1"})
	up := http.Header(er.Headers)
	spans := waitTrace(t, rcv, tid, 4)
	bServer := find(t, spans, tid, "b", tracev1.Span_SPAN_KIND_SERVER)
	bClient := find(t, spans, tid, "b", tracev1.Span_SPAN_KIND_CLIENT)
	if aServer := find(t, spans, tid, "a", tracev1.Span_SPAN_KIND_SERVER); aServer.ParentID != "a2fb4a1d1a96d312" {
		t.Errorf("A server parent %s, want the B3 span id", aServer.ParentID)
	}
	if up.Get("X-B3-Traceid") != tid || up.Get("X-B3-Spanid") != bClient.SpanID ||
		up.Get("X-B3-Parentspanid") != bServer.SpanID || up.Get("X-B3-Sampled") != "1" {
		t.Errorf("upstream B3 headers %v, want trace %s span %s parent %s", up, tid, bClient.SpanID, bServer.SpanID)
	}
	if want := "00-" + tid + "-" + bClient.SpanID + "-01"; up.Get("Traceparent") != want {
		t.Errorf("traceparent %q, want %q", up.Get("Traceparent"), want)
	}

	const tid64 = "48485a3953bb6124"
	_, er, _ = get(t, http.DefaultClient, "http://"+a+"/", map[string]string{"b3": tid64 + "-a2fb4a1d1a96d312-1"})
	b3 := http.Header(er.Headers).Get("B3")
	full := "0000000000000000" + tid64
	spans = waitTrace(t, rcv, full, 4)
	bServer = find(t, spans, full, "b", tracev1.Span_SPAN_KIND_SERVER)
	bClient = find(t, spans, full, "b", tracev1.Span_SPAN_KIND_CLIENT)
	if want := tid64 + "-" + bClient.SpanID + "-1-" + bServer.SpanID; b3 != want {
		t.Errorf("upstream b3 %q, want %q (64-bit trace id kept)", b3, want)
	}
}

// TestTracingRetriesMakeClientSpans: each attempt is its own client span.
func TestTracingRetriesMakeClientSpans(t *testing.T) {
	rcv := tracetest.Start(t)
	app := startEcho(t, "app")
	a := startTraced(t, tracedProxy{Node: "node-r", Service: "a", Route: "r", Random: 100, Upstream: app.Addr(), Collector: rcv.Addr,
		RouteExtra: `, retry_policy: {retry_on: "5xx", num_retries: 2}`})
	resp, _, _ := get(t, http.DefaultClient, "http://"+a+"/?status=503", map[string]string{"x-request-id": "retry-1"})
	if resp.StatusCode != 503 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var server tracetest.Span
	deadline := time.Now().Add(15 * time.Second)
	for server.SpanID == "" {
		for _, s := range rcv.Spans() {
			if s.Kind == tracev1.Span_SPAN_KIND_SERVER && s.Attrs["guid:x-request-id"] == "retry-1" {
				server = s
			}
		}
		if server.SpanID == "" {
			if time.Now().After(deadline) {
				t.Fatalf("no server span: %+v", rcv.Spans())
			}
			rcv.WaitSpans(t, len(rcv.Spans())+1, time.Until(deadline))
		}
	}
	spans := waitTrace(t, rcv, server.TraceID, 4)
	clients := 0
	for _, s := range spans {
		if s.Kind == tracev1.Span_SPAN_KIND_CLIENT {
			clients++
			if s.ParentID != server.SpanID || !s.Error || s.Attrs["http.response.status_code"] != "503" {
				t.Errorf("attempt span %+v", s)
			}
		}
	}
	if clients != 3 || !server.Error || server.Attrs["response_flags"] != "URX" {
		t.Fatalf("%d client spans (want 3), server %+v", clients, server)
	}
}

// TestTracingCollectorDownOrSlow: requests are unaffected when the
// collector refuses connections or stops answering.
func TestTracingCollectorDownOrSlow(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	slow := tracetest.Start(t)
	slow.Block()
	for _, collector := range []string{dead, slow.Addr} {
		a := chain(t, collector, 100)
		start := time.Now()
		for i := range 100 {
			resp, _, body := get(t, http.DefaultClient, "http://"+a+"/", nil)
			if resp.StatusCode != 200 {
				t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
			}
		}
		// Generous: the point is that no request waits for an export
		// (one would take the 10s export timeout).
		if d := time.Since(start); d > 20*time.Second {
			t.Fatalf("100 requests took %v with the collector at %s", d, collector)
		}
	}
}

func TestTracingConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, tracing, want string
	}{
		{name: "unknown cluster", tracing: `{provider: {name: otel, typed_config: {"@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig, grpc_service: {envoy_grpc: {cluster_name: nope}}}}}`,
			want: `tracing.provider.typed_config.grpc_service.envoy_grpc.cluster_name: cluster "nope" is not defined`},
		{name: "no provider", tracing: `{random_sampling: {value: 10}}`, want: "tracing.provider: required"},
		{name: "bad percent", tracing: `{random_sampling: {value: 101}, provider: {name: otel, typed_config: {"@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig, grpc_service: {envoy_grpc: {cluster_name: up}}}}}`,
			want: "tracing.random_sampling: value 101 is not within [0, 100]"},
		{name: "zipkin", tracing: `{provider: {name: zipkin, typed_config: {"@type": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig, collector_cluster: up, collector_endpoint: /api/v2/spans}}}`,
			want: "envoy.config.trace.v3.ZipkinConfig"},
		{name: "verbose", tracing: `{verbose: true}`, want: "verbose"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := render(t, webListener+`          tracing: `+tc.tracing+`
          route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: up}}]}]}
          `+routerFilter+`
  clusters:
  - name: up
    load_assignment: {cluster_name: up, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}}]}]}
`, nil)
			b, err := decode.Bootstrap(doc)
			if err == nil {
				err = proxy.New(proxy.Options{Logger: slog.New(slog.DiscardHandler)}).Validate(b)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestTracingRouteOverride: a route's tracing replaces the connection
// manager's sampling (0% here) for the requests it matches.
func TestTracingRouteOverride(t *testing.T) {
	rcv := tracetest.Start(t)
	app := startEcho(t, "app")
	doc := strings.NewReplacer("ADDR_APP", `{{addr "`+app.Addr()+`"}}`, "ADDR_OTEL", `{{addr "`+rcv.Addr+`"}}`,
		"0.0.0.0, port_value: 8080", "127.0.0.1, port_value: 0").Replace(tracingDocExample)
	doc = strings.Replace(doc, "random_sampling: {value: 1}", "random_sampling: {value: 0}", 1)
	p := startProxy(t, doc, nil)
	addr := p.ListenerAddrs()["inbound"]

	_, er, _ := get(t, http.DefaultClient, "http://"+addr+"/other", nil)
	other, _, flags := parseTraceparent(t, http.Header(er.Headers).Get("Traceparent"))
	if flags != "00" {
		t.Fatalf("/other at 0%%: sampled")
	}
	_, er, _ = get(t, http.DefaultClient, "http://"+addr+"/checkout", map[string]string{"x-tenant": "acme"})
	checkout, _, flags := parseTraceparent(t, http.Header(er.Headers).Get("Traceparent"))
	if flags != "01" {
		t.Fatalf("/checkout with a 100%% route override: not sampled")
	}
	spans := waitTrace(t, rcv, checkout, 2)
	server := find(t, spans, checkout, "web", tracev1.Span_SPAN_KIND_SERVER)
	if server.Name != "checkout" || server.Attrs["tenant"] != "acme" || server.Attrs["trellis.service"] != "web" || server.Attrs["node_id"] != "web-1" {
		t.Errorf("server span %+v", server)
	}
	if got := traceOf(rcv.Spans(), other); len(got) != 0 {
		t.Errorf("/other recorded: %+v", got)
	}
}

// tracingDocExample is the bootstrap of docs/tracing.md (and of the
// decoder's ok-tracing golden), with its addresses to be replaced.
const tracingDocExample = `node: {id: web-1}
static_resources:
  listeners:
  - name: inbound
    address: {socket_address: {address: 0.0.0.0, port_value: 8080}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: inbound
          tracing:
            provider:
              name: envoy.tracers.opentelemetry
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                grpc_service: {envoy_grpc: {cluster_name: otel-collector}}
                service_name: web
            spawn_upstream_span: true
            random_sampling: {value: 1}
            custom_tags:
            - {tag: trellis.mesh, literal: {value: default}}
            - {tag: trellis.service, literal: {value: web}}
            - {tag: tenant, request_header: {name: x-tenant, default_value: none}}
            - {tag: zone, environment: {name: ZONE}}
          route_config:
            virtual_hosts:
            - name: web
              domains: ["*"]
              routes:
              - name: checkout
                match: {prefix: /checkout}
                route: {cluster: web}
                tracing: {random_sampling: {numerator: 100, denominator: HUNDRED}}
              - {name: all, match: {prefix: /}, route: {cluster: web}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: web
    load_assignment: {cluster_name: web, endpoints: [{lb_endpoints: [{endpoint: {address: ADDR_APP}}]}]}
  - name: otel-collector
    load_assignment: {cluster_name: otel-collector, endpoints: [{lb_endpoints: [{endpoint: {address: ADDR_OTEL}}]}]}
`

// TestTracingCollectorNameUnresolved: a collector cluster whose DNS name
// does not resolve does not make the proxy refuse its configuration; the
// exporter keeps trying the name and requests are served.
func TestTracingCollectorNameUnresolved(t *testing.T) {
	app := newUpstream(t, "app", answer(200))
	cfg := strings.Replace(tracedBootstrap, "  - name: otel\n    load_assignment:", "  - name: otel\n    type: STRICT_DNS\n    load_assignment:", 1)
	p := startProxy(t, cfg, tracedProxy{Node: "node-x", Service: "svc", Route: "route", Random: 100, Upstream: app.addr(), Collector: "collector.invalid:4317"})
	resp, err := http.Get("http://" + p.ListenerAddrs()["l"] + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}
