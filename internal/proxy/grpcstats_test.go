package proxy_test

import (
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// TestGRPCStatusMetric: gRPC answers carry their failure in grpc-status
// under HTTP 200; trellis_http_downstream_grpc_requests_total counts them
// by status, from trailers, trailers-only answers and local replies alike.
func TestGRPCStatusMetric(t *testing.T) {
	e := startEcho(t, "grpc-echo")
	p := startProxy(t, h2Config, e.Addr())
	conn, err := grpc.NewClient(p.ListenerAddrs()["web"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := grpc_testing.NewTestServiceClient(conn)
	ctx := t.Context()
	for range 3 {
		if _, err := c.UnaryCall(ctx, &grpc_testing.SimpleRequest{ResponseSize: 10}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		_, err := c.UnaryCall(ctx, &grpc_testing.SimpleRequest{ResponseStatus: &grpc_testing.EchoStatus{Code: int32(codes.Internal), Message: "boom"}})
		if status.Code(err) != codes.Internal {
			t.Fatalf("got %v, want Internal", err)
		}
	}
	if err := conn.Invoke(ctx, "/nope.Service/Call", &grpc_testing.Empty{}, &grpc_testing.Empty{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("local reply: %v, want Unavailable", err)
	}
	fams, err := p.Metrics().Prom.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "trellis_http_downstream_grpc_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "grpc_status" {
					got[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	want := map[string]float64{"0": 3, "13": 2, "14": 1}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("grpc_status %s: %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}
