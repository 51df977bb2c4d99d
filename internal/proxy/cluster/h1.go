package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster/circuit"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
)

// h1Transport is the proxy's HTTP/1.1 upstream client. Unlike
// http.Transport, which hands every request to a read and a write goroutine
// per connection, it writes the request and reads the response on the
// caller's goroutine (a body is streamed by a helper goroutine so a response
// may start before the request ends). Idle connections are kept per host in
// LIFO order, so a busy proxy keeps few, warm connections.
type h1Transport struct {
	d           *dialer
	q           *connQueue       // the cluster's pending requests; nil: no limits
	pending     *metrics.Pending // nil when q is
	cxOverflow  func()           // counts a request that must wait for a connection
	idleTimeout time.Duration
	maxIdle     int // per host
	bufSize     int

	mu   sync.Mutex
	idle map[string][]*h1Conn
}

type h1Conn struct {
	net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
}

func newH1Transport(d *dialer, q *connQueue, pending *metrics.Pending, idleTimeout time.Duration, bufSize int) *h1Transport {
	if bufSize <= 0 {
		bufSize = 16 << 10
	}
	return &h1Transport{d: d, q: q, pending: pending, cxOverflow: func() { d.stats().ConnOverflow.Inc() },
		idleTimeout: idleTimeout, maxIdle: 4096, bufSize: bufSize, idle: map[string][]*h1Conn{}}
}

// connect returns a connection to addr for a request that found none idle.
// Under circuit breakers the request is pending (max_pending_requests)
// until it has one: it waits in the cluster's FIFO while max_connections
// connections are open, and takes either a freed slot (and dials) or an
// idle connection to addr handed over by the pool (reused is then true).
// Errors are ConnectError, ErrPendingOverflow, or a pendingError carrying
// the cause of ctx when it ended first.
func (t *h1Transport) connect(ctx context.Context, addr string) (c *h1Conn, reused bool, err error) {
	var b *circuit.Breaker
	if t.q != nil && t.d.breakers != nil {
		b = t.d.breakers()
	}
	if b == nil {
		nc, err := t.d.open(ctx, addr, nil)
		if err != nil {
			return nil, false, err
		}
		return t.wrap(nc), false, nil
	}
	c, err = t.q.admit(ctx, t, addr, b, t.pending, t.cxOverflow)
	if err != nil {
		return nil, false, err
	}
	if c != nil {
		t.q.admitted(b, t.pending)
		return c, true, nil
	}
	nc, err := t.d.open(ctx, addr, b)
	t.q.admitted(b, t.pending)
	if err != nil {
		return nil, false, err
	}
	return t.wrap(nc), false, nil
}

func (t *h1Transport) wrap(nc net.Conn) *h1Conn {
	return &h1Conn{Conn: nc, br: bufio.NewReaderSize(nc, t.bufSize), bw: bufio.NewWriterSize(nc, t.bufSize)}
}

// CloseIdleConnections closes every pooled connection.
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = map[string][]*h1Conn{}
	t.mu.Unlock()
	for _, cs := range idle {
		for _, c := range cs {
			c.Close()
		}
	}
}

func (t *h1Transport) get(addr string) *h1Conn {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	cs := t.idle[addr]
	for len(cs) > 0 {
		c := cs[len(cs)-1]
		cs[len(cs)-1] = nil
		cs = cs[:len(cs)-1]
		if t.idleTimeout > 0 && now.Sub(c.idleAt) > t.idleTimeout {
			go c.Close()
			continue
		}
		t.idle[addr] = cs
		return c
	}
	t.idle[addr] = cs
	return nil
}

func (t *h1Transport) put(addr string, c *h1Conn) {
	if handed, closeIt := t.q.offer(addr, c); handed {
		return // a pending request for addr takes it
	} else if closeIt {
		c.Close() // frees the slot for an older request to another host
		return
	}
	c.idleAt = time.Now()
	t.mu.Lock()
	if len(t.idle[addr]) < t.maxIdle {
		t.idle[addr] = append(t.idle[addr], c)
		c = nil
	}
	t.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// errStaleConn marks a pooled connection the upstream had already closed.
var errStaleConn = errors.New("pooled connection closed by upstream")

// RoundTrip implements http.RoundTripper for HTTP/1.1 upstreams.
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	addr := req.URL.Host
	for attempt := 0; ; attempt++ {
		var c *h1Conn
		if attempt == 0 {
			c = t.get(addr) // a retry always dials: the pool may hold more stale ones
		}
		reused := c != nil
		if c == nil {
			var err error
			if c, reused, err = t.connect(req.Context(), addr); err != nil {
				return nil, err
			}
		}
		resp, err := t.exchange(c, req)
		if err == nil {
			return resp, nil
		}
		c.Close()
		// A keep-alive connection the upstream closed while idle fails
		// before any response byte; a request without a body is safe to
		// send again on a fresh connection (as net/http does).
		if reused && errors.Is(err, errStaleConn) && req.Body == nil && attempt == 0 {
			continue
		}
		if errors.Is(err, errStaleConn) {
			err = errors.Unwrap(err)
		}
		return nil, err
	}
}

func (t *h1Transport) exchange(c *h1Conn, req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	stop := context.AfterFunc(ctx, func() { c.Conn.SetDeadline(time.Unix(1, 0)) })
	bodyDone := make(chan error, 1)
	if err := writeHead(c.bw, req); err != nil {
		stop()
		return nil, err
	}
	if req.Body == nil {
		bodyDone <- nil
		if err := c.bw.Flush(); err != nil {
			stop()
			return nil, fmt.Errorf("%w: %w", errStaleConn, err)
		}
	} else {
		go func() { bodyDone <- writeBody(c.bw, req) }()
	}
	var resp *http.Response
	var err error
	for {
		resp, err = http.ReadResponse(c.br, req)
		if err != nil {
			stop()
			if ctx.Err() != nil {
				return nil, context.Cause(ctx)
			}
			if req.Body == nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
				return nil, fmt.Errorf("%w: %w", errStaleConn, err)
			}
			return nil, err
		}
		// Interim 1xx answers (100 Continue, 103) are consumed here; 101
		// is the final answer of an upgrade.
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		break
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		stop()
		c.Conn.SetDeadline(time.Time{})
		resp.Body = &upgradedBody{c: c}
		return resp, nil
	}
	keep := !resp.Close && !req.Close
	resp.Body = &h1Body{rc: resp.Body, c: c, t: t, addr: req.URL.Host, stop: stop, bodyDone: bodyDone, keep: keep}
	return resp, nil
}

// writeHead writes the request line and headers.
func writeHead(w *bufio.Writer, req *http.Request) error {
	uri := req.URL.RequestURI()
	w.WriteString(req.Method)
	w.WriteByte(' ')
	w.WriteString(uri)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	w.WriteString(host)
	w.WriteString("\r\n")
	for k, vs := range req.Header {
		if k == "Host" || k == "Content-Length" || k == "Transfer-Encoding" || k == "Trailer" {
			continue
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") || strings.ContainsAny(k, "\r\n :") {
				return fmt.Errorf("invalid header %q", k)
			}
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	switch {
	case req.Body == nil:
		if req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch {
			w.WriteString("Content-Length: 0\r\n")
		}
	case req.ContentLength > 0:
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.FormatInt(req.ContentLength, 10))
		w.WriteString("\r\n")
	default:
		w.WriteString("Transfer-Encoding: chunked\r\n")
		if len(req.Trailer) > 0 {
			w.WriteString("Trailer: ")
			first := true
			for k := range req.Trailer {
				if !first {
					w.WriteString(", ")
				}
				w.WriteString(k)
				first = false
			}
			w.WriteString("\r\n")
		}
	}
	_, err := w.WriteString("\r\n")
	return err
}

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// writeBody streams the request body (chunked when its length is unknown)
// and flushes after every read so a streaming client is not held back.
func writeBody(w *bufio.Writer, req *http.Request) error {
	chunked := req.ContentLength <= 0
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	var written int64
	for {
		n, rerr := req.Body.Read(buf)
		if n > 0 {
			if chunked {
				fmt.Fprintf(w, "%x\r\n", n)
			}
			w.Write(buf[:n])
			if chunked {
				w.WriteString("\r\n")
			}
			if err := w.Flush(); err != nil {
				return err
			}
			written += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if !chunked && written != req.ContentLength {
		return fmt.Errorf("request body: %d bytes sent, Content-Length %d", written, req.ContentLength)
	}
	if chunked {
		w.WriteString("0\r\n")
		for k, vs := range req.Trailer {
			for _, v := range vs {
				w.WriteString(k + ": " + v + "\r\n")
			}
		}
		w.WriteString("\r\n")
	}
	return w.Flush()
}

// h1Body returns the connection to the pool once the response body was
// read to its end and the request body was sent in full.
type h1Body struct {
	rc       io.ReadCloser
	c        *h1Conn
	t        *h1Transport
	addr     string
	stop     func() bool
	bodyDone chan error
	keep     bool
	done     bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.finish(true)
	} else if err != nil {
		b.finish(false)
	}
	return n, err
}

func (b *h1Body) Close() error {
	if !b.done {
		b.finish(false)
	}
	return nil
}

func (b *h1Body) finish(complete bool) {
	b.done = true
	stopped := b.stop()
	reuse := complete && b.keep && stopped
	if reuse {
		// The request body must be fully sent before the connection is
		// reused. An upstream that answered early may not read the rest;
		// then the connection is closed rather than waited for.
		select {
		case err := <-b.bodyDone:
			reuse = err == nil
		default:
			reuse = false
		}
	}
	if reuse {
		b.t.put(b.addr, b.c)
		return
	}
	b.c.Close()
}

// upgradedBody is the upstream side of an upgraded connection.
type upgradedBody struct{ c *h1Conn }

func (u *upgradedBody) Read(p []byte) (int, error)  { return u.c.br.Read(p) }
func (u *upgradedBody) Write(p []byte) (int, error) { return u.c.Conn.Write(p) }
func (u *upgradedBody) Close() error                { return u.c.Conn.Close() }

// CloseWrite half-closes the upstream connection.
func (u *upgradedBody) CloseWrite() error {
	if cw, ok := u.c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return u.c.Conn.Close()
}
