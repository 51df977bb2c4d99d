package echo

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
)

// ErrStarted is returned by Start when the server was started before.
var ErrStarted = errors.New("echo: server already started")

// readHeaderTimeout bounds how long a client may take to send request
// headers. No other timeout is set: responses and bodies may stream for as
// long as the client asks.
const readHeaderTimeout = 10 * time.Second

// Server is the echo workload. Build it with New, then Start and Shutdown
// it, or run it with Serve.
type Server struct {
	opts       Options
	nameHdr    []string // read-only, shared by all responses
	versionHdr []string
	md         metadata.MD // x-echo-name and x-echo-version, read-only

	http   *http.Server
	grpc   *grpc.Server
	health *health.Server
	ws     websocket.Server

	tunnels  tunnels
	draining atomic.Bool
	requests atomic.Uint64
	tcpConns atomic.Uint64
	lastSize atomic.Pointer[sizeHeader]
	faults   atomic.Pointer[faultState] // nil: healthy
	faultsMu sync.Mutex                 // serialises SetFaults

	mu       sync.Mutex // guards the fields below
	started  bool
	httpAddr string
	tcpAddr  string
	tcpLn    net.Listener
	serving  sync.WaitGroup
	serveErr chan error // first fatal listener error, buffered
}

// New validates opts, loads the TLS key pair if any, and returns a Server
// ready to Start. It binds nothing.
func New(opts Options) (*Server, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("echo: %w", err)
	}
	var errs []error
	for _, v := range [...]struct{ name, value string }{{"name", opts.Name}, {"version", opts.Version}} {
		if !httpguts.ValidHeaderFieldValue(v.value) {
			errs = append(errs, fmt.Errorf("%s %q: not a valid header value", v.name, v.value))
		}
	}
	var tlsConf *tls.Config
	if opts.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(opts.TLSCertFile, opts.TLSKeyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("tls: %w", err))
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("echo: %w", err)
	}

	s := &Server{
		opts:       opts,
		nameHdr:    []string{opts.Name},
		versionHdr: []string{opts.Version},
		md:         metadata.Pairs("x-echo-name", opts.Name, "x-echo-version", opts.Version),
		health:     health.NewServer(), // reports SERVING for "" until Shutdown
		serveErr:   make(chan error, 2),
	}
	s.health.SetServingStatus(grpc_testing.TestService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	s.grpc = s.newGRPCServer()
	s.ws = s.newWebSocket()

	var protos http.Protocols
	protos.SetHTTP1(true)
	if tlsConf != nil {
		protos.SetHTTP2(true)
	} else {
		protos.SetUnencryptedHTTP2(true) // prior knowledge only, no Upgrade: h2c
	}
	s.http = &http.Server{
		Handler:           s,
		Protocols:         &protos,
		TLSConfig:         tlsConf, // ServeTLS adds h2 and http/1.1 to NextProtos
		ReadHeaderTimeout: readHeaderTimeout,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// Start binds the listeners and serves on them in the background. It
// returns ErrStarted if called twice. Use Addr and TCPAddr to learn the
// bound addresses when a port was 0.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return ErrStarted
	}
	ln, err := net.Listen("tcp", s.opts.HTTPAddr)
	if err != nil {
		return fmt.Errorf("echo: http listener: %w", err)
	}
	if s.opts.TCPAddr != "" {
		if s.tcpLn, err = net.Listen("tcp", s.opts.TCPAddr); err != nil {
			ln.Close()
			return fmt.Errorf("echo: tcp listener: %w", err)
		}
		s.tcpAddr = s.tcpLn.Addr().String()
		s.serving.Go(func() { s.serveTCP(s.tcpLn) })
	}
	s.started = true
	s.httpAddr = ln.Addr().String()
	s.serving.Go(func() {
		var err error
		if s.http.TLSConfig != nil {
			err = s.http.ServeTLS(ln, "", "")
		} else {
			err = s.http.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			s.serveErr <- fmt.Errorf("echo: serve http: %w", err)
		}
	})
	return nil
}

// Addr returns the bound host:port of the HTTP listener, or "" before
// Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.httpAddr
}

// TCPAddr returns the bound host:port of the TCP echo listener, or "" before
// Start or when Options.TCPAddr is empty.
func (s *Server) TCPAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tcpAddr
}

// Stats returns the counters of what the server has served.
func (s *Server) Stats() Stats {
	return Stats{Requests: s.requests.Load(), TCPConnections: s.tcpConns.Load()}
}

// Serve starts the server unless it was started already, blocks until ctx
// is done, then shuts it down, giving in-flight work up to
// Options.DrainTimeout. It returns nil after a clean drain, the Shutdown
// error if the drain was cut short, or the error of a failed listener.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Start(); err != nil && !errors.Is(err, ErrStarted) {
		return err
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-s.serveErr:
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.DrainTimeout)
	defer cancel()
	return errors.Join(serveErr, s.Shutdown(dctx))
}

// Shutdown drains the server gracefully. It marks gRPC health NOT_SERVING
// and /healthz 503, closes the listeners, refuses new upgrades, and waits
// for in-flight requests, gRPC streams and open tunnels (WebSocket,
// upgrade, TCP echo) to finish. If ctx is done first, it closes whatever is
// left and returns ctx's error. Shutdown before Start only releases
// resources. The Server cannot be started again.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.health.Shutdown()
	_ = s.SetFaults(Faults{}) // release requests held by Hang, so they drain
	s.tunnels.drain()

	s.mu.Lock()
	started, tcpLn := s.started, s.tcpLn
	s.started = true // a later Start fails with ErrStarted
	s.mu.Unlock()

	var errs []error
	if started {
		if tcpLn != nil {
			tcpLn.Close()
		}
		// net/http waits for in-flight handlers, gRPC calls included, and
		// sends HTTP/2 GOAWAY; it leaves hijacked connections to us.
		if err := s.http.Shutdown(ctx); err != nil {
			s.http.Close()
			errs = append(errs, fmt.Errorf("echo: drain requests: %w", err))
		}
		if err := s.tunnels.wait(ctx); err != nil {
			errs = append(errs, fmt.Errorf("echo: drain tunnels: %w", err))
		}
	}
	s.tunnels.closeAll()
	// Not GracefulStop: it drains ServeHTTP transports by closing them.
	// By now every gRPC call has finished or its connection is closed.
	s.grpc.Stop()
	s.serving.Wait()
	return errors.Join(errs...)
}
