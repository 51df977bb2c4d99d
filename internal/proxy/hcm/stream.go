package hcm

import (
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/httpfilter"
	"github.com/trellis-mesh/trellis/internal/proxy/route"
	"github.com/trellis-mesh/trellis/internal/telemetry/accesslog"
	"github.com/trellis-mesh/trellis/internal/telemetry/tap"
	"github.com/trellis-mesh/trellis/internal/telemetry/trace"
)

// stream is the per-request state of the connection manager. It is pooled.
type stream struct {
	cfg   *Config
	start time.Time
	w     http.ResponseWriter
	r     *http.Request

	// Downstream facts, captured before the request headers are mutated.
	method, authority, path, userAgent, xff string
	remote                                  string // trusted client "ip:port" or "ip"
	requestID                               string

	status       int
	wroteHeader  bool
	flags        accesslog.Flags
	reason       string
	route        *route.Route
	vhost        *route.VirtualHost
	cluster      string
	upstreamHost string
	upstreamTime time.Duration
	bytesSent    int64
	// reqBody counts request body bytes. It is allocated per request with
	// a body, never pooled: upstream clients may read a request body after
	// RoundTrip returns.
	reqBody     bodyCounter
	retries     int
	timeout     time.Duration // the route timeout in force (grpc-timeout may set it)
	vars        route.Vars
	path2       string             // the matched (escaped) path
	replyHeader http.Header        // extra headers for a local reply
	freq        httpfilter.Request // reused by the filter chain
	span        trace.Span         // the server span; inactive without tracing
	// reqCapture and rspCapture keep the first bytes of the bodies for
	// a tap that asked for them (tap.go); nil otherwise.
	reqCapture, rspCapture *tap.Capture
}

var streamPool = sync.Pool{New: func() any { return new(stream) }}

func (s *stream) reset() { *s = stream{} }

// bodyCounter reports how many request body bytes were read.
type bodyCounter interface{ count() int64 }

type noBody struct{}

func (noBody) count() int64 { return 0 }

// countingBody counts request body bytes read by the upstream transport,
// which may read on a goroutine of its own.
type countingBody struct {
	rc io.ReadCloser
	n  int64 // accessed atomically
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	atomic.AddInt64(&b.n, int64(n))
	return n, err
}

func (b *countingBody) count() int64 { return atomic.LoadInt64(&b.n) }

func (b *countingBody) Close() error { return b.rc.Close() }

// finish records metrics and the access log for the request.
func (s *stream) finish() {
	c := s.cfg
	d := time.Since(s.start)
	if s.span.Recording() {
		s.endTrace()
	}
	c.Stats.Done(s.status)
	c.Stats.Duration.Observe(d.Seconds())
	if s.status == http.StatusOK && isGRPC(s.r) {
		c.Stats.DoneGRPC(s.grpcStatus())
	}
	if s.route != nil {
		rs := c.RouteStats[s.route.ID]
		rs.Done(s.status)
		rs.Duration.Observe(d.Seconds())
	}
	if t := c.Tap; t != nil && t.Active() {
		s.tap(t, d)
	}
	if len(c.AccessLogs) == 0 {
		return
	}
	e := accesslog.Entry{
		Start: s.start, Kind: "http", Listener: c.Listener,
		Method: s.method, Authority: s.authority, Path: s.path, Protocol: s.r.Proto,
		Status: s.status, Flags: s.flags, Reason: s.reason, Duration: d,
		UpstreamHost: s.upstreamHost, UpstreamCluster: s.cluster, UpstreamServiceTime: s.upstreamTime, Retries: s.retries,
		BytesReceived: s.reqBody.count(), BytesSent: s.bytesSent, RequestID: s.requestID,
		DownstreamRemote: s.remote, UserAgent: s.userAgent, ForwardedFor: s.xff,
	}
	if s.route != nil {
		e.Route = s.route.Name
	}
	for _, l := range c.AccessLogs {
		l.Log(&e)
	}
}

// localAddr returns the downstream local address of r's connection.
func localAddr(r *http.Request) string {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		return a.String()
	}
	return ""
}
