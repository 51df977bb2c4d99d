package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"reflect"
	"sync"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster/circuit"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
)

type protocol uint8

const (
	protoHTTP1 protocol = iota
	protoHTTP2
	protoAuto       // ALPN over TLS, HTTP/1.1 in plaintext (Envoy auto_config)
	protoDownstream // same major version as the downstream request
	protoRaw        // opaque bytes (tcp_proxy): ALPN only as configured
)

// transportConfig is everything that shapes a cluster's connection pool.
// Two equal configs share a pool across snapshots.
type transportConfig struct {
	connectTimeout time.Duration
	idleTimeout    time.Duration
	bufferLimit    int
	protocol       protocol
	tls            *tls.Config
	tlsKey         string // deterministic encoding of the UpstreamTlsContext
	h2StreamWindow int32
	h2ConnWindow   int32
}

func (a transportConfig) equal(b transportConfig) bool {
	ta, tb := a.tls, b.tls
	a.tls, b.tls = nil, nil
	if a != b {
		return false
	}
	// Same TLS context document (tlsKey) and same certificate contents:
	// the configs verify and present the same things.
	return (ta == nil) == (tb == nil) && (ta == nil || reflect.DeepEqual(ta.Certificates, tb.Certificates))
}

// roundTripper is an upstream client with a connection pool.
type roundTripper interface {
	http.RoundTripper
	CloseIdleConnections()
}

// pools are the connection pools of one cluster.
type pools struct {
	cfg  transportConfig
	main roundTripper
	h2   roundTripper                                                      // only for protoDownstream
	raw  func(ctx context.Context, network, addr string) (net.Conn, error) // tcp_proxy
}

// ConnectError marks an error that happened while connecting to an
// upstream host (Envoy's UF), as opposed to after the connection was up.
type ConnectError struct{ Err error }

func (e *ConnectError) Error() string { return "upstream connect error: " + e.Err.Error() }
func (e *ConnectError) Unwrap() error { return e.Err }

// IsConnectError reports whether err came from connecting to the upstream.
func IsConnectError(err error) bool {
	var ce *ConnectError
	return errors.As(err, &ce)
}

func newPools(cfg transportConfig, stats func() *metrics.Cluster, breaker func() *circuit.Breaker, q *connQueue, pending *metrics.Pending) *pools {
	p := &pools{cfg: cfg, raw: newDialer(cfg, protoRaw, stats, breaker, q).dial()}
	switch cfg.protocol {
	case protoDownstream:
		p.main = newTransport(cfg, protoHTTP1, stats, breaker, q, pending)
		p.h2 = newTransport(cfg, protoHTTP2, stats, breaker, q, pending)
	default:
		p.main = newTransport(cfg, cfg.protocol, stats, breaker, q, pending)
	}
	return p
}

// dialer connects to upstream hosts, counting connections, and for TLS
// clusters completes the handshake as part of connecting: a failed one
// (untrusted peer, SAN mismatch) is a connect failure (UF), as in Envoy.
type dialer struct {
	cfg      transportConfig
	breakers func() *circuit.Breaker // nil: no connection limit
	queue    *connQueue              // woken when a connection closes; may be nil
	tls      *tls.Config             // with NextProtos for the protocol; nil for plaintext
	stats    func() *metrics.Cluster
	d        net.Dialer
}

// plain takes a connection slot (max_connections), failing at once with
// ErrConnectionOverflow when there is none, and connects.
func (d *dialer) plain(ctx context.Context, _, addr string) (net.Conn, error) {
	var b *circuit.Breaker
	if d.breakers != nil {
		if b = d.breakers(); b != nil && !b.AcquireConnection() {
			d.stats().ConnOverflow.Inc()
			return nil, ErrConnectionOverflow
		}
	}
	return d.connect(ctx, addr, b)
}

// connect opens a TCP connection to addr holding a connection slot of b
// (nil: none), which the connection gives back when it closes.
func (d *dialer) connect(ctx context.Context, addr string, b *circuit.Breaker) (net.Conn, error) {
	s := d.stats()
	c, err := d.d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if b != nil {
			b.ReleaseConnection()
			d.queue.released(b)
		}
		s.ConnectFail.Inc()
		return nil, &ConnectError{Err: err}
	}
	s.Connections.Inc()
	s.Active.Inc()
	return &countedConn{Conn: c, active: s, breaker: b, queue: d.queue}, nil
}

// open is connect plus, for TLS clusters, the handshake.
func (d *dialer) open(ctx context.Context, addr string, b *circuit.Breaker) (net.Conn, error) {
	c, err := d.connect(ctx, addr, b)
	if err != nil || d.tls == nil {
		return c, err
	}
	return d.handshake(ctx, c)
}

// ErrConnectionOverflow is returned when circuit_breakers max_connections
// refuses a new upstream connection (Envoy's UO): for tcp_proxy and HTTP/2
// pools at once; HTTP/1.1 requests wait in the pending queue instead and
// fail with ErrPendingOverflow, which matches ErrConnectionOverflow under
// errors.Is.
var ErrConnectionOverflow = errors.New("upstream connection limit (circuit_breakers max_connections) reached")

func (d *dialer) withTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := d.plain(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return d.handshake(ctx, c)
}

// handshake runs the TLS client handshake on c, closing c if it fails.
func (d *dialer) handshake(ctx context.Context, c net.Conn) (net.Conn, error) {
	tlsConn := tls.Client(c, d.tls)
	hctx, cancel := context.WithTimeout(ctx, d.cfg.connectTimeout)
	defer cancel()
	if err := tlsConn.HandshakeContext(hctx); err != nil {
		c.Close()
		d.stats().ConnectFail.Inc()
		return nil, &ConnectError{Err: err}
	}
	return tlsConn, nil
}

// dial returns the connect function for the cluster's transport.
func (d *dialer) dial() func(ctx context.Context, network, addr string) (net.Conn, error) {
	if d.tls != nil {
		return d.withTLS
	}
	return d.plain
}

// newDialer returns the dialer for a cluster's transport of protocol proto.
func newDialer(cfg transportConfig, proto protocol, stats func() *metrics.Cluster, breaker func() *circuit.Breaker, q *connQueue) *dialer {
	d := &dialer{cfg: cfg, stats: stats, breakers: breaker, queue: q, d: net.Dialer{Timeout: cfg.connectTimeout, KeepAlive: 30 * time.Second}}
	if cfg.tls != nil {
		d.tls = cfg.tls.Clone()
		switch {
		case proto == protoHTTP2:
			d.tls.NextProtos = []string{"h2"}
		case proto == protoAuto && len(d.tls.NextProtos) == 0:
			d.tls.NextProtos = []string{"h2", "http/1.1"}
		case proto == protoHTTP1 && len(d.tls.NextProtos) == 0:
			d.tls.NextProtos = []string{"http/1.1"}
		}
	}
	return d
}

func newTransport(cfg transportConfig, proto protocol, stats func() *metrics.Cluster, breaker func() *circuit.Breaker, q *connQueue, pending *metrics.Pending) roundTripper {
	d := newDialer(cfg, proto, stats, breaker, q)
	if proto == protoHTTP1 {
		return newH1Transport(d, q, pending, cfg.idleTimeout, cfg.bufferLimit)
	}
	t := &http.Transport{
		Proxy:       nil,
		DialContext: d.plain,
		// Pools are sized to concurrency: Go's default of 2 idle
		// connections per host makes a busy proxy reconnect constantly.
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   4096,
		IdleConnTimeout:       cfg.idleTimeout,
		TLSHandshakeTimeout:   cfg.connectTimeout,
		DisableCompression:    true, // a proxy must not add Accept-Encoding
		ExpectContinueTimeout: 0,
		ReadBufferSize:        cfg.bufferLimit,
		WriteBufferSize:       cfg.bufferLimit,
		HTTP2: &http.HTTP2Config{
			MaxReceiveBufferPerStream:     int(cfg.h2StreamWindow),
			MaxReceiveBufferPerConnection: int(cfg.h2ConnWindow),
		},
	}
	if d.tls != nil {
		t.DialTLSContext = d.withTLS
	}
	var ps http.Protocols
	switch proto {
	case protoHTTP2:
		if cfg.tls != nil {
			ps.SetHTTP2(true)
		} else {
			ps.SetUnencryptedHTTP2(true)
		}
	case protoAuto:
		ps.SetHTTP1(true)
		if cfg.tls != nil {
			ps.SetHTTP2(true)
		}
	}
	t.Protocols = &ps
	t.ForceAttemptHTTP2 = ps.HTTP2()
	return t
}

// countedConn decrements the active-connections gauge once on Close.
type countedConn struct {
	net.Conn
	active  *metrics.Cluster
	breaker *circuit.Breaker // released on Close, may be nil
	queue   *connQueue       // told on Close, may be nil
	once    sync.Once
}

// CloseWrite half-closes the TCP connection (for upgraded tunnels).
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.active.Active.Dec()
		if c.breaker != nil {
			c.breaker.ReleaseConnection()
			c.queue.released(c.breaker)
		}
	})
	return c.Conn.Close()
}

func (p *pools) closeIdle() {
	p.main.CloseIdleConnections()
	if p.h2 != nil {
		p.h2.CloseIdleConnections()
	}
}
