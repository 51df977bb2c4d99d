package hcm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Server is a long-lived HTTP server for one filter chain of a listener.
// The listener hands it accepted connections with Serve; requests use the
// Config most recently stored with Update.
type Server struct {
	settings ServerSettings
	cfg      atomic.Pointer[Config]
	srv      *http.Server // HTTP/2 (h2 and h2c)
	h1       *h1Server    // HTTP/1.x
	log      *slog.Logger
	ln       *connListener
	done     chan struct{}
}

// NewServer starts a server with the connection-level settings of cfg.
func NewServer(cfg *Config, logger *slog.Logger) *Server {
	s := &Server{settings: cfg.Server, ln: newConnListener(), done: make(chan struct{})}
	s.h1 = newH1Server(s)
	s.log = logger
	s.cfg.Store(cfg)
	var ps http.Protocols
	switch cfg.Server.Codec {
	case CodecAuto:
		ps.SetHTTP1(true)
		ps.SetHTTP2(true)
		ps.SetUnencryptedHTTP2(true)
	case CodecHTTP1:
		ps.SetHTTP1(true)
	case CodecHTTP2:
		ps.SetHTTP2(true)
		ps.SetUnencryptedHTTP2(true)
	}
	s.srv = &http.Server{
		Handler:           s,
		Protocols:         &ps,
		IdleTimeout:       cfg.Server.IdleTimeout,
		ReadTimeout:       cfg.Server.RequestTimeout,
		ReadHeaderTimeout: cfg.Server.RequestHeadersTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          log.New(slogWriter{logger}, "", 0),
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams:          int(cfg.Server.MaxConcurrentStreams),
			MaxReceiveBufferPerStream:     int(cfg.Server.StreamWindow),
			MaxReceiveBufferPerConnection: int(cfg.Server.ConnWindow),
		},
		// TLSConfig stays nil: TLS is terminated by the listener, and
		// http.Server then picks h2 from a *tls.Conn's ALPN result.
	}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(s.ln)
	}()
	return s
}

// Settings returns the connection-level settings the server was made with.
func (s *Server) Settings() ServerSettings { return s.settings }

// Update makes cfg the configuration for requests that start from now on.
func (s *Server) Update(cfg *Config) { s.cfg.Store(cfg) }

// tlsHandshakeTimeout bounds a downstream TLS handshake.
const tlsHandshakeTimeout = 15 * time.Second

// Serve serves an accepted (and, for TLS chains, TLS-wrapped) connection.
// HTTP/1.x connections are served on the calling goroutine until they end;
// HTTP/2 ones (ALPN h2, or the h2c preface with codec AUTO or HTTP2) are
// handed to net/http's server and Serve returns at once. It returns an
// error once the server is shutting down.
func (s *Server) Serve(c net.Conn) error {
	codec := s.settings.Codec
	if tc, ok := c.(*tls.Conn); ok {
		_ = tc.SetDeadline(time.Now().Add(tlsHandshakeTimeout))
		err := tc.Handshake()
		_ = tc.SetDeadline(time.Time{})
		if err != nil {
			c.Close()
			return nil
		}
		st := tc.ConnectionState()
		if st.NegotiatedProtocol == "h2" || codec == CodecHTTP2 {
			return s.ln.push(c)
		}
		s.h1.serve(c, &st)
		return nil
	}
	switch codec {
	case CodecHTTP2:
		return s.ln.push(c)
	case CodecHTTP1:
		s.h1.serve(c, nil)
		return nil
	}
	// AUTO: h2c prior knowledge or HTTP/1.x, told apart by the preface.
	hc := &limitReader{r: c, remain: noLimit}
	br := h1ReaderPool.Get().(*bufio.Reader)
	br.Reset(hc)
	if IsH2Preface(br) {
		return s.ln.push(&BufferedConn{Conn: c, R: br})
	}
	s.h1.serveWith(c, br, hc)
	return nil
}

var h2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

// IsH2Preface peeks just enough of br to tell the HTTP/2 connection
// preface from an HTTP/1.x request line: it returns as soon as the bytes
// differ, so a short HTTP/1.x request never waits for more.
func IsH2Preface(br *bufio.Reader) bool {
	for n := 1; n <= len(h2Preface); n++ {
		b, err := br.Peek(n)
		if !bytes.HasPrefix(h2Preface, b) {
			return false
		}
		if err != nil {
			return false
		}
	}
	return true
}

// BufferedConn is a connection whose reads go through R, which may hold
// bytes already read (peeked) from Conn.
type BufferedConn struct {
	net.Conn
	R *bufio.Reader
}

func (b *BufferedConn) Read(p []byte) (int, error) { return b.R.Read(p) }

// NetConn returns the wrapped connection.
func (b *BufferedConn) NetConn() net.Conn { return b.Conn }

// CloseWrite half-closes the connection, or closes it when it cannot.
func (b *BufferedConn) CloseWrite() error {
	c := b.Conn
	for {
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			return cw.CloseWrite()
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return c.Close()
		}
		c = u.NetConn()
	}
}

// Shutdown stops accepting connections, closes idle ones and waits for
// active requests to finish or ctx to end, after which remaining
// connections are closed.
func (s *Server) Shutdown(ctx context.Context) error {
	var wg sync.WaitGroup
	var h1err error
	wg.Add(1)
	go func() { defer wg.Done(); h1err = s.h1.shutdownH1(ctx) }()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	<-s.done
	wg.Wait()
	return errors.Join(err, h1err)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.cfg.Load().serve(w, r)
}

// connListener is a net.Listener fed by the proxy's own accept loop.
type connListener struct {
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

var errClosed = errors.New("server closed")

func newConnListener() *connListener {
	return &connListener{ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *connListener) push(c net.Conn) error {
	select {
	case l.ch <- c:
		return nil
	case <-l.closed:
		return errClosed
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *connListener) Addr() net.Addr { return &net.TCPAddr{} }

// slogWriter routes net/http's internal error log (TLS handshake errors,
// malformed requests) to the proxy's logger at debug level.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	if w.l != nil {
		w.l.Debug(string(trimNL(p)), "component", "hcm")
	}
	return len(p), nil
}

func trimNL(p []byte) []byte {
	for len(p) > 0 && p[len(p)-1] == '\n' {
		p = p[:len(p)-1]
	}
	return p
}
