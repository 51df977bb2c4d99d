package health

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster/lb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

// checkOnceAt runs one check of addr with cfg outside Run.
func checkOnceAt(t *testing.T, c *Checker, s *session) result {
	t.Helper()
	r, _ := c.checkOnce(s)
	return r
}

func newSession(addr string) *session {
	return &session{host: lb.NewHost(addr, ""), stopCtx: context.Background()}
}

// seen is what the HTTP test server saw of the last request.
type seen struct {
	mu     sync.Mutex
	host   string
	method string
	proto  int
	header http.Header
}

func httpServer(t *testing.T, status *atomic.Int32, s *seen) *httptest.Server {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.host, s.method, s.proto, s.header = r.Host, r.Method, r.ProtoMajor, r.Header.Clone()
		s.mu.Unlock()
		w.WriteHeader(int(status.Load()))
	}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func TestHTTPCheck(t *testing.T) {
	var status atomic.Int32
	var s seen
	srv := httpServer(t, &status, &s)
	addr := srv.Listener.Addr().String()
	tests := []struct {
		name   string
		http   HTTPCheck
		status int
		want   result
		check  func(t *testing.T, s *seen)
	}{
		{name: "default 200", status: 200, want: success, check: func(t *testing.T, s *seen) {
			if s.host != "backend" || s.method != "GET" || s.header.Get("User-Agent") != "Envoy/HC" || s.proto != 1 {
				t.Errorf("host %q method %q user-agent %q proto %d, want backend GET Envoy/HC 1", s.host, s.method, s.header.Get("User-Agent"), s.proto)
			}
		}},
		{name: "default rejects 204", status: 204, want: failActive},
		{name: "expected range", http: HTTPCheck{Expected: []StatusRange{{200, 300}}}, status: 204, want: success},
		{name: "expected range end is exclusive", http: HTTPCheck{Expected: []StatusRange{{200, 204}}}, status: 204, want: failActive},
		{name: "retriable", http: HTTPCheck{Retriable: []StatusRange{{503, 504}}}, status: 503, want: failRetriable},
		{name: "not retriable", http: HTTPCheck{Retriable: []StatusRange{{503, 504}}}, status: 500, want: failActive},
		{name: "expected wins over retriable", http: HTTPCheck{Expected: []StatusRange{{200, 600}}, Retriable: []StatusRange{{500, 600}}}, status: 503, want: success},
		{name: "host header and method", http: HTTPCheck{Host: "svc.local", Method: "HEAD"}, status: 200, want: success, check: func(t *testing.T, s *seen) {
			if s.host != "svc.local" || s.method != "HEAD" {
				t.Errorf("host %q method %q, want svc.local HEAD", s.host, s.method)
			}
		}},
		{
			name: "request headers",
			http: HTTPCheck{
				RemoveHeaders: []string{"user-agent"},
				AddHeaders: []HeaderOption{
					{Key: "x-a", Value: "1"}, {Key: "x-a", Value: "2"},
					{Key: "x-b", Value: "1"}, {Key: "x-b", Value: "2", Action: OverwriteIfExistsOrAdd},
					{Key: "x-c", Value: "1"}, {Key: "x-c", Value: "2", Action: AddIfAbsent},
					{Key: "x-d", Value: "1", Action: OverwriteIfExists},
					{Key: "x-e", Value: ""}, {Key: "x-f", Value: "", KeepEmpty: true},
				},
			},
			status: 200, want: success,
			check: func(t *testing.T, s *seen) {
				got := map[string][]string{}
				for _, k := range []string{"User-Agent", "X-A", "X-B", "X-C", "X-D", "X-E", "X-F"} {
					if v, ok := s.header[k]; ok {
						got[k] = v
					}
				}
				want := map[string][]string{"X-A": {"1", "2"}, "X-B": {"2"}, "X-C": {"1"}, "X-F": {""}}
				if !equalHeaders(got, want) {
					t.Errorf("headers %v, want %v", got, want)
				}
			},
		},
		{name: "http2 prior knowledge", http: HTTPCheck{Codec: HTTP2}, status: 200, want: success, check: func(t *testing.T, s *seen) {
			if s.proto != 2 {
				t.Errorf("proto %d, want 2", s.proto)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.http
			h.Path = "/healthz?full=1"
			if h.Method == "" {
				h.Method = "GET"
			}
			if h.Expected == nil {
				h.Expected = []StatusRange{{200, 201}}
			}
			cfg := testConfig()
			cfg.HTTP = h
			status.Store(int32(tc.status))
			c := New(cfg, Options{Cluster: "backend"})
			sess := newSession(addr)
			defer sess.closeConn()
			if got := checkOnceAt(t, c, sess); got != tc.want {
				t.Fatalf("result %v, want %v", got, tc.want)
			}
			if tc.check != nil {
				s.mu.Lock()
				defer s.mu.Unlock()
				tc.check(t, &s)
			}
		})
	}
}

func equalHeaders(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w := b[k]
		if len(v) != len(w) {
			return false
		}
		for i := range v {
			if v[i] != w[i] {
				return false
			}
		}
	}
	return true
}

func TestHTTPCheckTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			w.WriteHeader(500)
		}
	}))
	defer srv.Close()
	tlsCfg := srv.Client().Transport.(*http.Transport).TLSClientConfig
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		d := tls.Dialer{Config: tlsCfg}
		return d.DialContext(ctx, "tcp", addr)
	}
	for _, codec := range []Codec{HTTP1, HTTP2} {
		cfg := testConfig()
		cfg.HTTP = HTTPCheck{Path: "/", Method: "GET", Codec: codec, Expected: []StatusRange{{200, 201}}}
		c := New(cfg, Options{Dial: dial})
		s := newSession(srv.Listener.Addr().String())
		if got := checkOnceAt(t, c, s); got != success || s.scheme != "https" {
			t.Errorf("codec %d: result %v scheme %q, want success https", codec, got, s.scheme)
		}
		s.closeConn()
	}
}

func TestHTTPConnectionReuse(t *testing.T) {
	for _, reuse := range []bool{true, false} {
		var conns atomic.Int32
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				conns.Add(1)
			}
		}
		srv.Start()
		cfg := testConfig()
		cfg.ReuseConnection = reuse
		cfg.HTTP = HTTPCheck{Path: "/", Method: "GET", Expected: []StatusRange{{200, 201}}}
		c := New(cfg, Options{})
		s := newSession(srv.Listener.Addr().String())
		for range 3 {
			if got := checkOnceAt(t, c, s); got != success {
				t.Fatalf("reuse %v: result %v", reuse, got)
			}
		}
		s.closeConn()
		srv.Close()
		want := int32(3)
		if reuse {
			want = 1
		}
		if got := conns.Load(); got != want {
			t.Errorf("reuse_connection %v: %d connections, want %d", reuse, got, want)
		}
	}
}

func TestHTTPTimeoutAndRefused(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	cfg := testConfig()
	cfg.Timeout = 50 * time.Millisecond
	cfg.HTTP = HTTPCheck{Path: "/", Method: "GET", Expected: []StatusRange{{200, 201}}}
	c := New(cfg, Options{})
	s := newSession(srv.Listener.Addr().String())
	if got := checkOnceAt(t, c, s); got != failTimeout {
		t.Errorf("hanging server: result %v, want timeout", got)
	}
	if s.cc != nil {
		t.Error("connection kept after a timeout")
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	if got := checkOnceAt(t, c, newSession(addr)); got != failNetwork {
		t.Errorf("refused: result %v, want network", got)
	}
}

func tcpServer(t *testing.T, answer func(req []byte) []byte) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				buf := make([]byte, 64)
				for {
					n, err := conn.Read(buf)
					if err != nil {
						return
					}
					if _, err := conn.Write(answer(buf[:n])); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

func TestTCPCheck(t *testing.T) {
	addr := tcpServer(t, func(req []byte) []byte {
		if bytes.Equal(req, []byte("ping")) {
			return []byte("xxpo--ng")
		}
		return []byte("??")
	})
	tests := []struct {
		name string
		tcp  TCPCheck
		want result
	}{
		{name: "connect only", want: success},
		{name: "send only", tcp: TCPCheck{Send: []byte("ping")}, want: success},
		{name: "blocks in order", tcp: TCPCheck{Send: []byte("ping"), Receive: [][]byte{[]byte("po"), []byte("ng")}}, want: success},
		{name: "blocks out of order", tcp: TCPCheck{Send: []byte("ping"), Receive: [][]byte{[]byte("ng"), []byte("po")}}, want: failTimeout},
		{name: "wrong answer times out", tcp: TCPCheck{Send: []byte("pong"), Receive: [][]byte{[]byte("po")}}, want: failTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Protocol, cfg.TCP, cfg.Timeout = TCP, tc.tcp, 100*time.Millisecond
			c := New(cfg, Options{})
			s := newSession(addr)
			defer s.closeConn()
			// Twice, so the reused connection is exercised too.
			for i := range 2 {
				if got := checkOnceAt(t, c, s); got != tc.want {
					t.Fatalf("check %d: result %v, want %v", i, got, tc.want)
				}
			}
		})
	}
}

func TestGRPCCheck(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var md metadata.MD
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		mu.Lock()
		md, _ = metadata.FromIncomingContext(ctx)
		mu.Unlock()
		return h(ctx, req)
	}))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(l)
	defer srv.Stop()
	addr := l.Addr().String()

	tests := []struct {
		name    string
		service string
		status  healthpb.HealthCheckResponse_ServingStatus
		want    result
	}{
		{name: "serving", service: "pkg.Svc", status: healthpb.HealthCheckResponse_SERVING, want: success},
		{name: "not serving", service: "pkg.Svc", status: healthpb.HealthCheckResponse_NOT_SERVING, want: failActive},
		{name: "unknown service", service: "pkg.Other", status: healthpb.HealthCheckResponse_SERVING, want: failActive},
		{name: "server overall", service: "", status: healthpb.HealthCheckResponse_SERVING, want: success},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hs.SetServingStatus("pkg.Svc", tc.status)
			cfg := testConfig()
			cfg.Protocol = GRPC
			cfg.GRPC = GRPCCheck{ServiceName: tc.service, Metadata: []HeaderOption{{Key: "x-k", Value: "v"}}}
			c := New(cfg, Options{Cluster: "backend"})
			s := newSession(addr)
			defer s.closeConn()
			if got := checkOnceAt(t, c, s); got != tc.want {
				t.Fatalf("result %v, want %v", got, tc.want)
			}
			if tc.want != success {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if a, k := md.Get(":authority"), md.Get("x-k"); len(a) != 1 || a[0] != "backend" || len(k) != 1 || k[0] != "v" {
				t.Errorf(":authority %v x-k %v, want [backend] [v]", a, k)
			}
		})
	}
	// Not a gRPC server at all: an HTTP/1 listener answers garbage to h2.
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	cfg := testConfig()
	cfg.Protocol = GRPC
	if got := checkOnceAt(t, New(cfg, Options{}), newSession(plain.Listener.Addr().String())); got == success {
		t.Error("HTTP/1 server passed a gRPC check")
	}
}

// TestRunFlipsHost runs the whole checker against a real server whose
// status flips, polling with a deadline.
func TestRunFlipsHost(t *testing.T) {
	var status atomic.Int32
	status.Store(200)
	var s seen
	srv := httpServer(t, &status, &s)
	cfg := testConfig()
	cfg.Interval, cfg.UnhealthyInterval, cfg.UnhealthyEdgeInterval, cfg.HealthyEdgeInterval = 5*time.Millisecond, 5*time.Millisecond, 5*time.Millisecond, 5*time.Millisecond
	cfg.HTTP = HTTPCheck{Path: "/", Method: "GET", Expected: []StatusRange{{200, 201}}}
	changes := make(chan struct{}, 16)
	c := New(cfg, Options{OnChange: func() { changes <- struct{}{} }})
	host := lb.NewHost(srv.Listener.Addr().String(), "")
	c.SetHosts([]*lb.Host{host})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	waitFor := func(failed bool) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for host.FailedActiveHealthCheck() != failed {
			select {
			case <-changes:
			case <-deadline:
				t.Fatalf("host failed = %v, want %v", !failed, failed)
			}
		}
	}
	waitFor(false)
	status.Store(500)
	waitFor(true)
	status.Store(200)
	waitFor(false)
}
