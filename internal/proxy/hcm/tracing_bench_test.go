package hcm_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster"
	"github.com/trellis-mesh/trellis/internal/proxy/hcm"
	"github.com/trellis-mesh/trellis/internal/telemetry/accesslog"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
	"github.com/trellis-mesh/trellis/internal/telemetry/trace"
	"github.com/trellis-mesh/trellis/internal/telemetry/trace/tracetest"
	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

const tracingBenchClusters = `
static_resources:
  clusters:
  - name: up
    load_assignment: {cluster_name: up, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: PORT}}}}]}]}
  - name: otel
    load_assignment: {cluster_name: otel, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: OTEL}}}}]}]}
`

const tracingBenchTracing = `
tracing:
  provider:
    name: envoy.tracers.opentelemetry
    typed_config:
      "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
      grpc_service: {envoy_grpc: {cluster_name: otel}}
      service_name: bench
  spawn_upstream_span: true
  random_sampling: {value: %v}
`

// tracingBenchServer is benchServer's forward route with tracing at
// random sampling pct (pct < 0: no tracing field). The collector is a real
// OTLP receiver that holds every export until the benchmark ends, so the
// numbers are the request path's alone (span creation, attributes, the
// queue), not the background export's or the in-process receiver's.
func tracingBenchServer(b *testing.B, upstreamPort string, pct float64) *hcm.Server {
	rcv := tracetest.Start(b)
	rcv.Block()
	_, otelPort, _ := net.SplitHostPort(rcv.Addr)
	reg := metrics.New()
	bs, err := decode.Bootstrap([]byte(strings.NewReplacer("PORT", upstreamPort, "OTEL", otelPort).Replace(tracingBenchClusters)))
	if err != nil {
		b.Fatal(err)
	}
	set, err := cluster.NewManager(reg, nil).Build(bs.GetStaticResources().GetClusters(), nil, "clusters")
	if err != nil {
		b.Fatal(err)
	}
	doc := benchHCM
	if pct >= 0 {
		doc += fmt.Sprintf(tracingBenchTracing, pct)
	}
	pb := &hcmv3.HttpConnectionManager{}
	if err := decode.Unmarshal([]byte(doc), pb); err != nil {
		b.Fatal(err)
	}
	tracers := trace.NewManager(slog.New(slog.DiscardHandler))
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tracers.Shutdown(ctx)
	})
	b.Cleanup(rcv.Unblock) // runs before the shutdown above
	cfg, err := hcm.Build(pb, hcm.Deps{Listener: "bench", Clusters: set, Metrics: reg, Sinks: accesslog.NewSinks(), Tracers: tracers, NodeID: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	return hcm.NewServer(cfg, nil)
}

// BenchmarkForwardTracing compares BenchmarkForward's request path with
// tracing not configured, configured at 0% (a context is still made and
// propagated) and at 100% (server and client spans recorded and queued).
func BenchmarkForwardTracing(b *testing.B) {
	body := make([]byte, 1024)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) }))
	defer up.Close()
	_, port, _ := net.SplitHostPort(up.Listener.Addr().String())
	for _, bc := range []struct {
		name string
		pct  float64
	}{{"off", -1}, {"sampled=0%", 0}, {"sampled=100%", 100}} {
		b.Run(bc.name, func(b *testing.B) {
			s := tracingBenchServer(b, port, bc.pct)
			r := httptest.NewRequest("GET", "http://bench.local/x", nil)
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				r.Header = http.Header{"User-Agent": {"bench"}}
				s.ServeHTTP(w, r)
			}
		})
	}
}
