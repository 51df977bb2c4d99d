package echo

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"
)

// Default values for the Options fields left zero.
const (
	DefaultHTTPAddr     = "127.0.0.1:8080"
	DefaultVersion      = "v1"
	DefaultDrainTimeout = 10 * time.Second
)

// Options configures a Server. The zero value is usable: it serves plaintext
// HTTP and gRPC on DefaultHTTPAddr.
type Options struct {
	// Name identifies this instance in every response (the x-echo-name
	// header and gRPC metadata, the "name" JSON field). Default: the host
	// name (a pod's name in Kubernetes), or "echo" if it is unknown.
	Name string

	// Version is reported beside Name (x-echo-version, "version"), so
	// traffic-splitting demos can tell v1 from v2. Default: "v1".
	Version string

	// HTTPAddr is the host:port of the HTTP listener, which serves
	// HTTP/1.1, h2c with prior knowledge and gRPC (or, with TLS, h2 and
	// http/1.1 via ALPN, and gRPC). Port 0 picks a free port; Server.Addr
	// reports it after Start. Default: "127.0.0.1:8080" (loopback only).
	HTTPAddr string

	// TCPAddr, if set, is the host:port of a second listener that echoes
	// raw TCP bytes back until the client half-closes. Port 0 picks a free
	// port; Server.TCPAddr reports it. Default: empty, no TCP listener.
	TCPAddr string

	// TLSCertFile and TLSKeyFile are PEM files of a certificate chain and
	// its private key. When both are set the HTTP listener serves TLS only,
	// offering h2 and http/1.1 via ALPN; h2c is then not available. Default:
	// both empty, plaintext. Setting only one is an error.
	TLSCertFile string
	TLSKeyFile  string

	// DrainTimeout bounds how long Serve waits, once its context is done,
	// for in-flight requests, streams and tunnels before closing them.
	// Shutdown is bounded by its own context instead. Default: 10s.
	DrainTimeout time.Duration

	// Logger receives the few events the server logs (accept and TLS
	// handshake errors, at debug level). Requests are never logged.
	// Default: discard.
	Logger *slog.Logger
}

// withDefaults returns a copy of o with zero fields set to their defaults,
// or every invalid field reported at once.
func (o Options) withDefaults() (Options, error) {
	if o.Name == "" {
		o.Name = "echo"
		if h, err := os.Hostname(); err == nil && h != "" {
			o.Name = h
		}
	}
	if o.Version == "" {
		o.Version = DefaultVersion
	}
	if o.HTTPAddr == "" {
		o.HTTPAddr = DefaultHTTPAddr
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}

	var errs []error
	if _, _, err := net.SplitHostPort(o.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("http address %q: %w", o.HTTPAddr, err))
	}
	if o.TCPAddr != "" {
		if _, _, err := net.SplitHostPort(o.TCPAddr); err != nil {
			errs = append(errs, fmt.Errorf("tcp address %q: %w", o.TCPAddr, err))
		}
	}
	if (o.TLSCertFile == "") != (o.TLSKeyFile == "") {
		errs = append(errs, errors.New("tls: cert and key files must be set together"))
	}
	if o.DrainTimeout < 0 {
		errs = append(errs, fmt.Errorf("drain timeout %v: must not be negative", o.DrainTimeout))
	}
	return o, errors.Join(errs...)
}
