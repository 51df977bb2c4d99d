package main

import (
	"context"
	"net"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/service/metrics/v3"
	dto "github.com/prometheus/client_model/go"
	coltracev1 "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

// TestSinkCountsPushesAndSpans pushes metrics and exports spans over real
// gRPC and checks the totals line.
func TestSinkCountsPushesAndSpans(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{}
	srv := s.server()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ctx := t.Context()

	stream, err := metricsv3.NewMetricsServiceClient(conn).StreamMetrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	families := []*dto.MetricFamily{{Name: proto.String("a_total")}, {Name: proto.String("b_total")}}
	for i := range 3 {
		msg := &metricsv3.StreamMetricsMessage{EnvoyMetrics: families}
		if i == 0 {
			msg.Identifier = &metricsv3.StreamMetricsMessage_Identifier{Node: &corev3.Node{Id: "bench"}}
		}
		if err := stream.Send(msg); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}

	spans := []*tracev1.Span{{Name: "ingress"}, {Name: "router backend egress"}}
	req := &coltracev1.ExportTraceServiceRequest{ResourceSpans: []*tracev1.ResourceSpans{
		{ScopeSpans: []*tracev1.ScopeSpans{{Spans: spans}, {Spans: spans[:1]}}},
		{ScopeSpans: []*tracev1.ScopeSpans{{Spans: spans}}},
	}}
	if _, err := coltracev1.NewTraceServiceClient(conn).Export(context.Background(), req); err != nil {
		t.Fatal(err)
	}

	want := "totals metric_streams=1 metric_pushes=3 metric_families=6 trace_exports=1 spans=5"
	if got := s.totals(); got != want {
		t.Errorf("totals:\n got %s\nwant %s", got, want)
	}
}

func TestRunRefusesBadAddress(t *testing.T) {
	if err := run("127.0.0.1:notaport", nil); err == nil {
		t.Error("run with a bad -listen address: no error")
	}
}
