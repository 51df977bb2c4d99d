package echo

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/grpc/interop/grpc_testing"
)

// TestShutdownDrainsInFlight starts a delayed request, shuts down while it
// waits, and expects it to complete.
func TestShutdownDrainsInFlight(t *testing.T) {
	s, err := New(Options{HTTPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	// StateActive fires once the request header is read: from then on
	// Shutdown must wait for this request.
	active := make(chan struct{}, 1)
	s.http.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateActive {
			select {
			case active <- struct{}{}:
			default:
			}
		}
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	c := clients(t, s)[0]

	type result struct {
		status int
		body   string
		err    error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := c.Get(c.base + "/?delay=300ms&size=5")
		if err != nil {
			res <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		res <- result{resp.StatusCode, string(b), err}
	}()
	<-active
	if err := s.Shutdown(t.Context()); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	r := <-res
	if r.err != nil || r.status != http.StatusOK || r.body != "ABCDE" {
		t.Errorf("in-flight request got %d %q, %v; want 200 ABCDE", r.status, r.body, r.err)
	}
	if _, err := net.Dial("tcp", s.Addr()); err == nil {
		t.Error("listener still accepts after Shutdown")
	}
	if err := s.Start(); !errors.Is(err, ErrStarted) {
		t.Errorf("Start after Shutdown: %v, want ErrStarted", err)
	}
}

// TestShutdownCutShort checks a done context closes what is left.
func TestShutdownCutShort(t *testing.T) {
	s, err := New(Options{HTTPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	// An open TCP tunnel, proven registered by one round trip.
	conn, err := net.Dial("tcp", s.TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}

	// An HTTP response that would stream for an hour, its first chunk read.
	resp, err := clients(t, s)[1].Get("http://" + s.Addr() + "/?chunks=2&chunk_delay=1h")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadFull(resp.Body, make([]byte, len("chunk 1 of 2\n"))); err != nil {
		t.Fatal(err)
	}
	// A gRPC stream, proven open by one round trip.
	stream, err := grpc_testing.NewTestServiceClient(dialGRPC(t, s.Addr(), nil)).FullDuplexCall(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&grpc_testing.StreamingOutputCallRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown: %v, want context.Canceled", err)
	}
	if n, err := conn.Read(make([]byte, 1)); err == nil {
		t.Errorf("tunnel still open after a forced shutdown: read %d bytes", n)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("streaming response ended cleanly after a forced shutdown, want an error")
	}
	if _, err := stream.Recv(); err == nil {
		t.Error("gRPC stream still open after a forced shutdown")
	}
}

// TestShutdownWaitsForTunnel checks Shutdown returns once the client ends
// its open tunnel, and not before.
func TestShutdownWaitsForTunnel(t *testing.T) {
	s, err := New(Options{HTTPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", s.TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	// The tunnel still echoes while the server drains.
	if _, err := conn.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(conn, b); err != nil || b[0] != 'y' {
		t.Fatalf("echo during drain: %q, %v", b, err)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a tunnel open", err)
	default:
	}
	conn.(*net.TCPConn).CloseWrite()
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func TestHealthzDraining(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("/healthz while draining: %d, want 503", w.Code)
	}
}
