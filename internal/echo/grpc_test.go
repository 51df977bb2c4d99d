package echo

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func dialGRPC(t *testing.T, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func checkMD(t *testing.T, what string, md metadata.MD) {
	t.Helper()
	if got := md.Get("x-echo-name"); !cmp.Equal(got, []string{testName}) {
		t.Errorf("%s x-echo-name %q, want [%s]", what, got, testName)
	}
	if got := md.Get("x-echo-version"); !cmp.Equal(got, []string{testVersion}) {
		t.Errorf("%s x-echo-version %q, want [%s]", what, got, testVersion)
	}
}

func TestGRPCUnary(t *testing.T) {
	certFile, keyFile, pool := testCert(t)
	plain := startServer(t, Options{})
	secure := startServer(t, Options{TLSCertFile: certFile, TLSKeyFile: keyFile})
	conns := []struct {
		name string
		cc   *grpc.ClientConn
	}{
		{"h2c", dialGRPC(t, plain.Addr(), nil)},
		{"tls", dialGRPC(t, secure.Addr(), credentials.NewTLS(&tls.Config{RootCAs: pool}))},
	}
	for _, conn := range conns {
		t.Run(conn.name, func(t *testing.T) {
			tc := grpc_testing.NewTestServiceClient(conn.cc)
			ctx := t.Context()

			var hdr, trl metadata.MD
			resp, err := tc.UnaryCall(ctx, &grpc_testing.SimpleRequest{
				Payload: &grpc_testing.Payload{Body: []byte("ping")},
			}, grpc.Header(&hdr), grpc.Trailer(&trl))
			if err != nil {
				t.Fatal(err)
			}
			if got := string(resp.GetPayload().GetBody()); got != "ping" {
				t.Errorf("echo payload %q, want ping", got)
			}
			checkMD(t, "header", hdr)
			checkMD(t, "trailer", trl)

			resp, err = tc.UnaryCall(ctx, &grpc_testing.SimpleRequest{ResponseSize: 100_000})
			if err != nil {
				t.Fatal(err)
			}
			if b := resp.GetPayload().GetBody(); len(b) != 100_000 || checkPattern(b, 0) >= 0 {
				t.Errorf("sized payload: %d bytes, want 100000 pattern bytes", len(b))
			}

			_, err = tc.UnaryCall(ctx, &grpc_testing.SimpleRequest{
				ResponseStatus: &grpc_testing.EchoStatus{Code: int32(codes.NotFound), Message: "nope"},
			}, grpc.Header(&hdr))
			if st := status.Convert(err); st.Code() != codes.NotFound || st.Message() != "nope" {
				t.Errorf("ResponseStatus: got %v, want NotFound nope", err)
			}
			checkMD(t, "error header", hdr)

			if _, err := tc.UnaryCall(ctx, &grpc_testing.SimpleRequest{ResponseSize: -1}); status.Code(err) != codes.InvalidArgument {
				t.Errorf("negative size: %v, want InvalidArgument", err)
			}
			if _, err := tc.EmptyCall(ctx, &grpc_testing.Empty{}); err != nil {
				t.Errorf("EmptyCall: %v", err)
			}
		})
	}
}

func TestGRPCStreams(t *testing.T) {
	s := startServer(t, Options{})
	tc := grpc_testing.NewTestServiceClient(dialGRPC(t, s.Addr(), nil))
	ctx := t.Context()
	sizes := []int32{0, 1, 31415, 100_000}
	params := make([]*grpc_testing.ResponseParameters, len(sizes))
	for i, n := range sizes {
		params[i] = &grpc_testing.ResponseParameters{Size: n, IntervalUs: 10}
	}

	t.Run("StreamingOutputCall", func(t *testing.T) {
		stream, err := tc.StreamingOutputCall(ctx, &grpc_testing.StreamingOutputCallRequest{ResponseParameters: params})
		if err != nil {
			t.Fatal(err)
		}
		var got []int32
		for {
			resp, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, int32(len(resp.GetPayload().GetBody())))
		}
		if diff := cmp.Diff(sizes, got); diff != "" {
			t.Errorf("response sizes (-want +got):\n%s", diff)
		}
		checkMD(t, "trailer", stream.Trailer())
	})

	t.Run("StreamingInputCall", func(t *testing.T) {
		stream, err := tc.StreamingInputCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var want int32
		for _, n := range sizes {
			want += n
			if err := stream.Send(&grpc_testing.StreamingInputCallRequest{Payload: &grpc_testing.Payload{Body: make([]byte, n)}}); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := stream.CloseAndRecv()
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.GetAggregatedPayloadSize(); got != want {
			t.Errorf("aggregated size %d, want %d", got, want)
		}
	})

	t.Run("FullDuplexCall", func(t *testing.T) {
		stream, err := tc.FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Each request is answered before the next is sent.
		for _, n := range sizes {
			req := &grpc_testing.StreamingOutputCallRequest{ResponseParameters: []*grpc_testing.ResponseParameters{{Size: n}, {Size: n + 1}}}
			if err := stream.Send(req); err != nil {
				t.Fatal(err)
			}
			for _, want := range []int32{n, n + 1} {
				resp, err := stream.Recv()
				if err != nil {
					t.Fatal(err)
				}
				if got := int32(len(resp.GetPayload().GetBody())); got != want {
					t.Errorf("response size %d, want %d", got, want)
				}
			}
		}
		if hdr, err := stream.Header(); err != nil {
			t.Error(err)
		} else {
			checkMD(t, "header", hdr)
		}
		// Without parameters the payload is echoed.
		if err := stream.Send(&grpc_testing.StreamingOutputCallRequest{Payload: &grpc_testing.Payload{Body: []byte("hi")}}); err != nil {
			t.Fatal(err)
		}
		if resp, err := stream.Recv(); err != nil || string(resp.GetPayload().GetBody()) != "hi" {
			t.Errorf("echo: %v, %v", resp, err)
		}
		// A status ends the call.
		if err := stream.Send(&grpc_testing.StreamingOutputCallRequest{ResponseStatus: &grpc_testing.EchoStatus{Code: int32(codes.Aborted)}}); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); status.Code(err) != codes.Aborted {
			t.Errorf("after ResponseStatus: %v, want Aborted", err)
		}
	})
}

func TestGRPCControls(t *testing.T) {
	s := startServer(t, Options{})
	tc := grpc_testing.NewTestServiceClient(dialGRPC(t, s.Addr(), nil))
	withMD := func(ctx context.Context, kv ...string) context.Context {
		return metadata.AppendToOutgoingContext(ctx, kv...)
	}

	var hdr metadata.MD
	_, err := tc.UnaryCall(withMD(t.Context(), "x-echo-fail", "1"), &grpc_testing.SimpleRequest{}, grpc.Header(&hdr))
	if status.Code(err) != codes.Unavailable {
		t.Errorf("x-echo-fail=1: %v, want Unavailable", err)
	}
	checkMD(t, "failure header", hdr)
	if _, err := tc.UnaryCall(withMD(t.Context(), "x-echo-fail", "0"), &grpc_testing.SimpleRequest{}); err != nil {
		t.Errorf("x-echo-fail=0: %v", err)
	}

	stream, err := tc.StreamingOutputCall(withMD(t.Context(), "x-echo-fail", "1"), &grpc_testing.StreamingOutputCallRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Unavailable {
		t.Errorf("x-echo-fail=1 on a stream: %v, want Unavailable", err)
	}

	// The delay outlasts the client's deadline.
	ctx, cancel := context.WithTimeout(withMD(t.Context(), "x-echo-delay", "1h"), 50*time.Millisecond)
	defer cancel()
	if _, err := tc.UnaryCall(ctx, &grpc_testing.SimpleRequest{}); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("x-echo-delay=1h: %v, want DeadlineExceeded", err)
	}
	if _, err := tc.UnaryCall(withMD(t.Context(), "x-echo-delay", "1ms"), &grpc_testing.SimpleRequest{}); err != nil {
		t.Errorf("x-echo-delay=1ms: %v", err)
	}

	for _, kv := range [][]string{{"x-echo-delay", "soon"}, {"x-echo-fail", "2"}} {
		_, err := tc.UnaryCall(withMD(t.Context(), kv...), &grpc_testing.SimpleRequest{})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), kv[0]) {
			t.Errorf("%s=%s: %v, want InvalidArgument naming the key", kv[0], kv[1], err)
		}
	}
}

// TestGRPCHealth checks SERVING, then NOT_SERVING once Shutdown starts, as a
// watching client (a proxy's health checker) sees it.
func TestGRPCHealth(t *testing.T) {
	s, err := New(Options{HTTPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	hc := healthpb.NewHealthClient(dialGRPC(t, s.Addr(), nil))
	for _, svc := range []string{"", "grpc.testing.TestService"} {
		resp, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("Check(%q) = %v, %v; want SERVING", svc, resp, err)
		}
	}
	if s.Stats().Requests != 0 {
		t.Errorf("health checks counted as requests: %d", s.Stats().Requests)
	}

	ctx, cancel := context.WithCancel(t.Context())
	watch, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch: %v, %v; want SERVING", resp, err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Watch during shutdown: %v, %v; want NOT_SERVING", resp, err)
	}
	// The watch is an in-flight call: Shutdown waits for it to end.
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}
