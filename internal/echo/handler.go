package echo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Paths with a fixed meaning; every other path is echoed.
const (
	pathHealthz   = "/healthz"
	pathStats     = "/echo/stats"
	pathWebSocket = "/ws"
	// grpcHealthPrefix starts the paths of grpc.health.v1.Health, which are
	// not counted as requests, like /healthz.
	grpcHealthPrefix = "/grpc.health.v1.Health/"
)

// Response header names and shared, read-only header values. The slices
// have len == cap, so an Add on the same key copies rather than writing
// into the shared array.
var (
	hdrName       = http.CanonicalHeaderKey("x-echo-name")
	hdrVersion    = http.CanonicalHeaderKey("x-echo-version")
	ctOctetStream = []string{"application/octet-stream"}
	ctText        = []string{"text/plain; charset=utf-8"}
	ctJSON        = []string{"application/json"}
)

const (
	hdrContentType   = "Content-Type"
	hdrContentLength = "Content-Length"
)

// RequestInfo is the JSON body of a default response: what the server saw
// of the request. Tests in other packages decode it to check what a proxy
// forwarded.
type RequestInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Method  string `json:"method"`
	// Path is the decoded URL path.
	Path  string     `json:"path"`
	Query url.Values `json:"query"`
	// Host is the Host header or HTTP/2 :authority.
	Host string `json:"host"`
	// Proto is "HTTP/1.1" or "HTTP/2.0".
	Proto string `json:"proto"`
	// Headers holds the request header fields in canonical form, without
	// Host.
	Headers    http.Header `json:"headers"`
	RemoteAddr string      `json:"remote_addr"`
	TLS        bool        `json:"tls"`
}

// Stats counts what the server has served since New.
type Stats struct {
	// Requests counts HTTP requests, gRPC calls and upgrades, but not
	// /healthz, /echo/stats or gRPC health checks, so probes do not skew
	// load-balancing tests.
	Requests uint64 `json:"requests"`
	// TCPConnections counts connections accepted by the TCP echo listener.
	TCPConnections uint64 `json:"tcp_connections"`
}

// copyBufs holds 32 KiB buffers for streaming request bodies and tunnels.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// ServeHTTP answers one request: gRPC, health, stats, upgrade or echo. It
// lets a Server be mounted in another http.Server or httptest.Server; only
// Start's listeners get h2c, TLS and Shutdown's drain.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 2 && isGRPC(r) {
		if !strings.HasPrefix(r.URL.Path, grpcHealthPrefix) {
			s.requests.Add(1)
		}
		if st := s.faults.Load(); st != nil && !st.inject(w, r, true) {
			return
		}
		// The gRPC interceptors add x-echo-name as metadata; setting the
		// header here too would send it twice.
		s.grpc.ServeHTTP(w, r)
		return
	}
	h := w.Header()
	h[hdrName] = s.nameHdr
	h[hdrVersion] = s.versionHdr
	if r.URL.Path == pathStats {
		s.serveStats(w)
		return
	}
	if strings.HasPrefix(r.URL.Path, pathFaultsPrefix) {
		s.serveFaults(w, r)
		return
	}
	if r.URL.Path != pathHealthz {
		s.requests.Add(1)
	}
	if st := s.faults.Load(); st != nil && !st.inject(w, r, false) {
		return
	}
	if r.URL.Path == pathHealthz {
		s.serveHealthz(w)
		return
	}
	if proto, ok := upgradeProto(r); ok {
		if r.URL.Path == pathWebSocket && strings.EqualFold(proto, "websocket") {
			s.ws.ServeHTTP(w, r)
		} else {
			s.serveUpgrade(w, r, proto)
		}
		return
	}
	var c controls
	if err := c.parse(r); err != nil {
		http.Error(w, "echo: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.respond(w, r, &c)
}

// isGRPC reports whether r is a gRPC call (not gRPC-Web, which the
// grpc-go handler does not speak).
func isGRPC(r *http.Request) bool {
	ct, ok := r.Header[hdrContentType]
	if !ok || len(ct) == 0 {
		return false
	}
	rest, ok := strings.CutPrefix(ct[0], "application/grpc")
	return ok && (rest == "" || rest[0] == '+' || rest[0] == ';')
}

func (s *Server) serveHealthz(w http.ResponseWriter) {
	w.Header()[hdrContentType] = ctText
	if s.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "draining\n")
		return
	}
	io.WriteString(w, "ok\n")
}

func (s *Server) serveStats(w http.ResponseWriter) {
	w.Header()[hdrContentType] = ctJSON
	json.NewEncoder(w).Encode(s.Stats())
}

// respond applies the controls in a fixed order: delay, reset, fail, then
// the body (echo_body, else chunks, else size, else the JSON description).
func (s *Server) respond(w http.ResponseWriter, r *http.Request, c *controls) {
	if c.delay > 0 && !sleep(r.Context(), c.delay) {
		return // the client gave up
	}
	if hit(c.reset) {
		abort(w, r)
	}
	h := w.Header()
	for _, f := range c.headers {
		h.Add(f.name, f.value)
	}
	if hit(c.fail) {
		h[hdrContentType] = ctText
		w.WriteHeader(c.failStatus)
		io.WriteString(w, "echo: injected failure\n")
		return
	}
	// Declared before the header is written, the only way that works for
	// both HTTP/1.1 (chunked) and HTTP/2; see net/http.ResponseWriter.
	for _, f := range c.trailers {
		h.Add("Trailer", f.name)
	}
	chunked := len(c.trailers) > 0 // HTTP/1.1 sends trailers only when chunked
	switch {
	case c.echoBody:
		echoBody(w, r, c.status, chunked)
	case c.chunks > 0:
		writeChunks(w, r, c)
	case c.size >= 0:
		h[hdrContentType] = ctOctetStream
		if !chunked && bodyAllowed(c.status) {
			h[hdrContentLength] = s.contentLength(c.size)
		}
		w.WriteHeader(c.status)
		if bodyAllowed(c.status) {
			writePayload(w, 0, c.size)
		}
	default:
		s.writeInfo(w, r, c.status)
	}
	for _, f := range c.trailers {
		h.Add(f.name, f.value)
	}
}

// sizeHeader is a Content-Length value shared by responses of one size.
type sizeHeader struct {
	size  int64
	value []string // read-only, len == cap
}

// contentLength returns the Content-Length value for size. It caches the
// last size asked for, as a benchmark asks for the same one over and over:
// the sized hot path then allocates nothing.
func (s *Server) contentLength(size int64) []string {
	if c := s.lastSize.Load(); c != nil && c.size == size {
		return c.value
	}
	c := &sizeHeader{size, []string{strconv.FormatInt(size, 10)}}
	s.lastSize.Store(c)
	return c.value
}

func (s *Server) writeInfo(w http.ResponseWriter, r *http.Request, status int) {
	b, err := json.Marshal(RequestInfo{
		Name:       s.opts.Name,
		Version:    s.opts.Version,
		Method:     r.Method,
		Path:       r.URL.Path,
		Query:      r.URL.Query(),
		Host:       r.Host,
		Proto:      r.Proto,
		Headers:    r.Header,
		RemoteAddr: r.RemoteAddr,
		TLS:        r.TLS != nil,
	})
	if err != nil { // cannot happen: every field is a string or a map of them
		http.Error(w, "echo: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header()[hdrContentType] = ctJSON
	w.WriteHeader(status)
	if bodyAllowed(status) {
		w.Write(append(b, '\n'))
	}
}

// echoBody streams the request body back as it arrives, flushing after
// every read, so it never holds more than one buffer of a body of any size
// and works as an interactive full-duplex echo.
func echoBody(w http.ResponseWriter, r *http.Request, status int, chunked bool) {
	rc := http.NewResponseController(w)
	// HTTP/1.x handlers otherwise cannot read the body once the response
	// has started (golang/go#15527); HTTP/2 is always full duplex and
	// answers ErrNotSupported, which is fine.
	_ = rc.EnableFullDuplex()
	h := w.Header()
	if ct := r.Header.Get(hdrContentType); ct != "" {
		h.Set(hdrContentType, ct)
	} else {
		h[hdrContentType] = ctOctetStream
	}
	if r.ContentLength >= 0 && !chunked {
		h[hdrContentLength] = []string{strconv.FormatInt(r.ContentLength, 10)}
	}
	w.WriteHeader(status)
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		n, err := r.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			_ = rc.Flush()
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			// The request body broke off: abort rather than end the
			// response cleanly, so the client does not mistake a
			// truncated echo for a complete one.
			panic(http.ErrAbortHandler)
		}
	}
}

// writeChunks sends c.chunks flushed writes, c.chunkDelay apart: the size
// bytes split evenly if size is set, else one "chunk i of n" line each.
func writeChunks(w http.ResponseWriter, r *http.Request, c *controls) {
	rc := http.NewResponseController(w)
	h := w.Header()
	if c.size >= 0 {
		h[hdrContentType] = ctOctetStream
	} else {
		h[hdrContentType] = ctText
	}
	w.WriteHeader(c.status)
	if !bodyAllowed(c.status) {
		return
	}
	_ = rc.Flush()
	n := int64(c.chunks)
	var off int64
	for i := range n {
		if i > 0 && c.chunkDelay > 0 && !sleep(r.Context(), c.chunkDelay) {
			return
		}
		var err error
		if c.size >= 0 {
			part := c.size / n
			if i < c.size%n {
				part++
			}
			err = writePayload(w, off, part)
			off += part
		} else {
			_, err = fmt.Fprintf(w, "chunk %d of %d\n", i+1, n)
		}
		if err != nil {
			return
		}
		_ = rc.Flush()
	}
}

// abort ends the exchange without a response: on HTTP/1 it closes the TCP
// connection with a reset (SO_LINGER 0), on HTTP/2 it resets the stream.
func abort(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 1 {
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			resetConn(conn)
			return
		}
	}
	// net/http turns this sentinel panic into RST_STREAM on HTTP/2 (or a
	// closed connection on HTTP/1) without logging it. It is the only way
	// for a handler to reset an HTTP/2 stream.
	panic(http.ErrAbortHandler)
}

// resetConn closes c so that the peer sees a TCP RST rather than a FIN.
func resetConn(c net.Conn) {
	if nc, ok := c.(interface{ NetConn() net.Conn }); ok { // *tls.Conn
		c = nc.NetConn()
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

// bodyAllowed reports whether a response with this status may have a body
// (RFC 9110 §15.3.5, §15.4.5).
func bodyAllowed(status int) bool {
	return status != http.StatusNoContent && status != http.StatusNotModified
}

// sleep waits for d or until ctx is done, and reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
