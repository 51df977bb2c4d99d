// Command telemetrysink is the receiving end of bench/telemetry-cost.sh: one
// plaintext gRPC server that accepts what a Trellis proxy exports and
// counts it.
//
//   - Envoy's metrics service (envoy.service.metrics.v3.MetricsService/
//     StreamMetrics), the stats_sinks envoy.stat_sinks.metrics_service
//     target: it counts streams, pushes (messages) and metric families.
//   - OTLP/gRPC traces (opentelemetry.proto.collector.trace.v1.TraceService/
//     Export), the OpenTelemetry tracer's collector: it counts exports and
//     spans.
//
// Each message is decoded in full (gRPC unmarshals it) and walked, as a
// real receiver would, but nothing is stored.
//
//	go run ./bench/telemetrysink [-listen 127.0.0.1:0]
//
// It prints "telemetrysink listening on ADDR" once serving and, on SIGTERM
// or SIGINT, one line of totals after the streams have ended (at most 5 s):
//
//	totals metric_streams=1 metric_pushes=15 metric_families=600 trace_exports=3 spans=310
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/service/metrics/v3"
	coltracev1 "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve gRPC on (plaintext)")
	flag.Parse()
	if err := run(*listen, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "telemetrysink:", err)
		os.Exit(1)
	}
}

func run(addr string, out io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("-listen %s: %w", addr, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	s := &sink{}
	srv := s.server()
	fmt.Fprintf(out, "telemetrysink listening on %s\n", ln.Addr())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	stopGracefully(srv, 5*time.Second)
	fmt.Fprintln(out, s.totals())
	return nil
}

// stopGracefully lets open streams end, then cuts them after limit.
func stopGracefully(srv *grpc.Server, limit time.Duration) {
	stopped := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(limit):
		srv.Stop()
		<-stopped
	}
}

// sink counts what it receives.
type sink struct {
	metricsv3.UnimplementedMetricsServiceServer
	coltracev1.UnimplementedTraceServiceServer

	metricStreams, metricPushes, metricFamilies atomic.Int64
	traceExports, spans                         atomic.Int64
}

// server returns a gRPC server with both services of s registered.
func (s *sink) server() *grpc.Server {
	srv := grpc.NewServer()
	metricsv3.RegisterMetricsServiceServer(srv, s)
	coltracev1.RegisterTraceServiceServer(srv, s)
	return srv
}

// StreamMetrics counts the pushes of one stream until the proxy closes it.
func (s *sink) StreamMetrics(stream metricsv3.MetricsService_StreamMetricsServer) error {
	s.metricStreams.Add(1)
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&metricsv3.StreamMetricsResponse{})
		}
		if err != nil {
			return err
		}
		s.metricPushes.Add(1)
		s.metricFamilies.Add(int64(len(msg.GetEnvoyMetrics())))
	}
}

// Export counts the spans of one OTLP export.
func (s *sink) Export(_ context.Context, req *coltracev1.ExportTraceServiceRequest) (*coltracev1.ExportTraceServiceResponse, error) {
	n := 0
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			n += len(ss.GetSpans())
		}
	}
	s.traceExports.Add(1)
	s.spans.Add(int64(n))
	return &coltracev1.ExportTraceServiceResponse{}, nil
}

// totals is the line printed at exit.
func (s *sink) totals() string {
	return fmt.Sprintf("totals metric_streams=%d metric_pushes=%d metric_families=%d trace_exports=%d spans=%d",
		s.metricStreams.Load(), s.metricPushes.Load(), s.metricFamilies.Load(), s.traceExports.Load(), s.spans.Load())
}
