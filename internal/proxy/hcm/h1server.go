package hcm

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// h1Server serves HTTP/1.x connections for a Server without net/http's
// per-request machinery (a background-read goroutine, header cloning and
// sorting, a context per request), which costs a proxy a large share of
// its CPU. Requests are parsed with http.ReadRequest and answered through
// an http.ResponseWriter, so the connection manager is the same code for
// HTTP/1.x and HTTP/2 (which stays with net/http).
//
// Known difference from net/http: a client that disconnects while its
// request waits for the upstream is noticed when the answer is written,
// not before.
type h1Server struct {
	s *Server

	mu       sync.Mutex
	conns    map[*h1Conn]struct{}
	shutdown atomic.Bool
	wg       sync.WaitGroup
}

type connState int32

const (
	stateIdle connState = iota
	stateActive
)

type h1Conn struct {
	srv      *h1Server
	c        net.Conn
	lr       *limitReader
	br       *bufio.Reader
	bw       *bufio.Writer
	ctx      context.Context
	tls      *tlsState
	state    atomic.Int32
	hijacked bool
	deadline time.Time // current read deadline (idle), refreshed lazily
}

// tlsState is the TLS state of a connection, shared by its requests.
type tlsState = tls.ConnectionState

// limitReader bounds how much the header phase may read (MaxHeaderBytes).
type limitReader struct {
	r      io.Reader
	remain int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.remain <= 0 {
		return 0, errHeaderTooLarge
	}
	if int64(len(p)) > l.remain {
		p = p[:l.remain]
	}
	n, err := l.r.Read(p)
	l.remain -= int64(n)
	return n, err
}

var errHeaderTooLarge = errors.New("request header too large")

const noLimit = 1 << 62

var h1BufPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}
var h1ReaderPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

func newH1Server(s *Server) *h1Server {
	return &h1Server{s: s, conns: map[*h1Conn]struct{}{}}
}

// serve runs one connection to its end. ts is the TLS state, or nil.
func (h *h1Server) serve(c net.Conn, ts *tlsState) {
	lr := &limitReader{r: c, remain: noLimit}
	br := h1ReaderPool.Get().(*bufio.Reader)
	br.Reset(lr)
	h.run(&h1Conn{srv: h, c: c, tls: ts, lr: lr, br: br})
}

// serveWith runs a plaintext connection whose first bytes br has already
// read through lr.
func (h *h1Server) serveWith(c net.Conn, br *bufio.Reader, lr *limitReader) {
	h.run(&h1Conn{srv: h, c: c, lr: lr, br: br})
}

func (h *h1Server) run(hc *h1Conn) {
	c := hc.c
	hc.bw = h1BufPool.Get().(*bufio.Writer)
	hc.bw.Reset(c)
	hc.ctx = context.WithValue(context.Background(), http.LocalAddrContextKey, c.LocalAddr())
	h.mu.Lock()
	if h.shutdown.Load() {
		h.mu.Unlock()
		c.Close()
		return
	}
	h.conns[hc] = struct{}{}
	h.wg.Add(1)
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.conns, hc)
		h.mu.Unlock()
		if !hc.hijacked {
			c.Close()
			h1ReaderPool.Put(hc.br)
			hc.bw.Reset(nil)
			h1BufPool.Put(hc.bw)
		}
		h.wg.Done()
	}()
	for !h.shutdown.Load() {
		if !hc.serveOne() {
			return
		}
	}
}

// serveOne reads and answers one request; false ends the connection.
func (hc *h1Conn) serveOne() bool {
	settings := &hc.srv.s.settings
	// Wait for the next request under the idle timeout. The deadline is
	// refreshed only when more than half of it is used: setting a deadline
	// per request costs timer work a busy connection does not need.
	if idle := settings.IdleTimeout; idle > 0 {
		if now := time.Now(); hc.deadline.Sub(now) < idle/2 {
			hc.deadline = now.Add(idle)
			hc.c.SetReadDeadline(hc.deadline)
		}
	}
	if _, err := hc.br.Peek(1); err != nil {
		return false
	}
	hc.state.Store(int32(stateActive))
	defer hc.state.Store(int32(stateIdle))
	if t := settings.RequestHeadersTimeout; t > 0 {
		hc.deadline = time.Now().Add(t)
		hc.c.SetReadDeadline(hc.deadline)
	}
	hc.lr.remain = maxHeaderBytes + 4096 - int64(hc.br.Buffered())
	req, err := http.ReadRequest(hc.br)
	hc.lr.remain = noLimit
	if err != nil {
		hc.badRequest(err)
		return false
	}
	if t := settings.RequestTimeout; t > 0 {
		hc.deadline = time.Now().Add(t)
		hc.c.SetReadDeadline(hc.deadline)
	} else if req.ContentLength != 0 || settings.RequestHeadersTimeout > 0 {
		// A body may stream for longer than the idle timeout.
		hc.deadline = time.Time{}
		hc.c.SetReadDeadline(hc.deadline)
	}
	req.RemoteAddr = hc.c.RemoteAddr().String()
	req.TLS = hc.tls
	req = req.WithContext(hc.ctx)
	w := &h1Response{hc: hc, req: req, header: make(http.Header, 8)}
	if req.ProtoMajor == 1 && req.ProtoMinor == 1 && req.Header.Get("Expect") == "100-continue" && req.Body != http.NoBody {
		req.Body = &expectContinue{rc: req.Body, w: w}
		req.Header.Del("Expect")
	}
	if !hc.handle(w, req) || hc.hijacked {
		return false
	}
	if err := w.finish(); err != nil {
		return false
	}
	if w.closeAfter || req.Close {
		return false
	}
	// Keep-alive: the rest of the request body must be read first. A
	// client still waiting for "100 Continue" will not send it: close.
	if ec, ok := req.Body.(*expectContinue); ok && !ec.sent {
		return false
	}
	if req.Body != nil && req.Body != http.NoBody {
		if _, err := io.CopyN(io.Discard, req.Body, 256<<10); err != io.EOF {
			return false
		}
	}
	return true
}

// handle runs the handler. A panic (http.ErrAbortHandler when an upstream
// fails mid-response) aborts the connection, as net/http does.
func (hc *h1Conn) handle(w *h1Response, req *http.Request) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			ok = false
			if p != http.ErrAbortHandler && hc.srv.s.log != nil {
				hc.srv.s.log.Error("handler panic", "panic", p, "component", "hcm")
			}
		}
	}()
	hc.srv.s.ServeHTTP(w, req)
	return true
}

func (hc *h1Conn) badRequest(err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return
	}
	status, msg := "400 Bad Request", "malformed HTTP request: "+err.Error()
	if errors.Is(err, errHeaderTooLarge) {
		status, msg = "431 Request Header Fields Too Large", "request headers exceed 60 KiB"
	}
	hc.c.SetWriteDeadline(time.Now().Add(time.Second))
	io.WriteString(hc.c, "HTTP/1.1 "+status+"\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"+
		ReasonHeader+": bad_request\r\nContent-Length: "+strconv.Itoa(len(msg)+1)+"\r\n\r\n"+msg+"\n")
}

// shutdownH1 stops serving: idle connections close now, active ones after
// their current request; it waits for all of them or for ctx, after which
// the remaining connections are closed.
func (h *h1Server) shutdownH1(ctx context.Context) error {
	// Under the lock, so no connection registers after the wait starts.
	h.mu.Lock()
	h.shutdown.Store(true)
	h.mu.Unlock()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		h.mu.Lock()
		for hc := range h.conns {
			if connState(hc.state.Load()) == stateIdle {
				hc.c.SetReadDeadline(time.Unix(1, 0))
			}
		}
		h.mu.Unlock()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			h.mu.Lock()
			for hc := range h.conns {
				hc.c.Close()
			}
			h.mu.Unlock()
			<-done
			return ctx.Err()
		case <-t.C:
		}
	}
}

// expectContinue sends "100 Continue" the first time the body is read.
type expectContinue struct {
	rc   io.ReadCloser
	w    *h1Response
	sent bool
}

func (e *expectContinue) Read(p []byte) (int, error) {
	if !e.sent {
		e.sent = true
		if !e.w.wroteHeader {
			e.w.hc.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			if err := e.w.hc.bw.Flush(); err != nil {
				return 0, err
			}
		}
	}
	return e.rc.Read(p)
}

func (e *expectContinue) Close() error { return e.rc.Close() }
