package hcm_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster"
	"github.com/trellis-mesh/trellis/internal/proxy/hcm"
	"github.com/trellis-mesh/trellis/internal/telemetry/accesslog"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

const benchBootstrap = `
static_resources:
  clusters:
  - name: up
    load_assignment: {cluster_name: up, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: PORT}}}}]}]}
`

const benchHCM = `
stat_prefix: bench
route_config:
  virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
    - {name: direct, match: {path: /direct}, direct_response: {status: 200, body: {inline_string: "ok"}}}
    - {name: fwd, match: {prefix: /}, route: {cluster: up}}
http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
`

func benchServer(b *testing.B, port string) *hcm.Server {
	reg := metrics.New()
	bs, err := decode.Bootstrap([]byte(strings.Replace(benchBootstrap, "PORT", port, 1)))
	if err != nil {
		b.Fatal(err)
	}
	set, err := cluster.NewManager(reg, nil).Build(bs.GetStaticResources().GetClusters(), nil, "clusters")
	if err != nil {
		b.Fatal(err)
	}
	pb := &hcmv3.HttpConnectionManager{}
	if err := decode.Unmarshal([]byte(benchHCM), pb); err != nil {
		b.Fatal(err)
	}
	cfg, err := hcm.Build(pb, hcm.Deps{Listener: "bench", Clusters: set, Metrics: reg, Sinks: accesslog.NewSinks()})
	if err != nil {
		b.Fatal(err)
	}
	return hcm.NewServer(cfg, nil)
}

type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

// BenchmarkDirectResponse measures the connection manager's own per-request
// work: routing, header rules, request id, metrics.
func BenchmarkDirectResponse(b *testing.B) {
	s := benchServer(b, "1")
	r := httptest.NewRequest("GET", "http://bench.local/direct", nil)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		r.Header = http.Header{"User-Agent": {"bench"}}
		s.ServeHTTP(w, r)
	}
}

// BenchmarkForward adds a real upstream exchange over loopback with a
// pooled connection and a 1 KiB body.
func BenchmarkForward(b *testing.B) {
	body := make([]byte, 1024)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) }))
	defer up.Close()
	_, port, _ := net.SplitHostPort(up.Listener.Addr().String())
	s := benchServer(b, port)
	r := httptest.NewRequest("GET", "http://bench.local/x", nil)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		r.Header = http.Header{"User-Agent": {"bench"}}
		s.ServeHTTP(w, r)
	}
}
