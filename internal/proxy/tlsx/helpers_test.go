package tlsx

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellis-mesh/trellis/internal/testutil/certs"
)

// Config builders, to keep test tables short.

func fileDS(path string) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: path}}
}

func inlineDS(s string) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: s}}
}

func tlsCert(l *certs.Leaf) *tlsv3.TlsCertificate {
	return &tlsv3.TlsCertificate{CertificateChain: fileDS(l.CertFile), PrivateKey: fileDS(l.KeyFile)}
}

func validationCtx(ca *certs.CA, sans ...*tlsv3.SubjectAltNameMatcher) *tlsv3.CertificateValidationContext {
	vc := &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: sans}
	if ca != nil {
		vc.TrustedCa = fileDS(ca.File())
	}
	return vc
}

// commonCtx builds a CommonTlsContext; vc may be nil.
func commonCtx(vc *tlsv3.CertificateValidationContext, alpn []string, certs ...*tlsv3.TlsCertificate) *tlsv3.CommonTlsContext {
	cc := &tlsv3.CommonTlsContext{TlsCertificates: certs, AlpnProtocols: alpn}
	if vc != nil {
		cc.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
	}
	return cc
}

func san(typ tlsv3.SubjectAltNameMatcher_SanType, m *matcherv3.StringMatcher) *tlsv3.SubjectAltNameMatcher {
	return &tlsv3.SubjectAltNameMatcher{SanType: typ, Matcher: m}
}

func exact(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}

func prefix(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: s}}
}

func regex(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: s}}}
}

func downstream(require bool, cc *tlsv3.CommonTlsContext) *tlsv3.DownstreamTlsContext {
	c := &tlsv3.DownstreamTlsContext{CommonTlsContext: cc}
	if require {
		c.RequireClientCertificate = wrapperspb.Bool(true)
	}
	return c
}

// handshakeResult is one side's view of a handshake.
type handshakeResult struct {
	state tls.ConnectionState
	err   error
}

// handshake runs a TLS handshake over loopback TCP (net.Pipe has no buffer,
// so a side writing an alert while the other writes session tickets would
// deadlock). It counts as successful for the client only once a byte the
// server writes after its handshake arrives: in TLS 1.3 the client finishes
// before the server has checked the client's certificate.
func handshake(t *testing.T, server, client *tls.Config) (srv, cli handshakeResult) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	deadline := time.Now().Add(10 * time.Second)
	done := make(chan handshakeResult, 1)
	go func() {
		a, err := ln.Accept()
		if err != nil {
			done <- handshakeResult{err: err}
			return
		}
		defer a.Close()
		_ = a.SetDeadline(deadline)
		s := tls.Server(a, server)
		err = s.Handshake()
		if err == nil {
			_, err = s.Write([]byte{'k'})
		}
		done <- handshakeResult{s.ConnectionState(), err}
	}()
	b, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_ = b.SetDeadline(deadline)
	c := tls.Client(b, client)
	err = c.Handshake()
	if err == nil {
		var buf [1]byte
		_, err = io.ReadFull(c, buf[:])
	}
	cli = handshakeResult{c.ConnectionState(), err}
	b.Close()
	return <-done, cli
}

// checkErr fails unless err matches want: nil for "", else containing it.
func checkErr(t *testing.T, what string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s: unexpected error: %v", what, err)
	case want != "" && err == nil:
		t.Errorf("%s: no error, want one containing %q", what, want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("%s: error %q does not contain %q", what, err, want)
	}
}

// memConn is a net.Conn reading from a fixed byte slice at most chunk bytes
// per Read (0: all available); writes are kept.
type memConn struct {
	r       bytes.Reader
	chunk   int
	written bytes.Buffer
	closed  bool
}

func newMemConn(data []byte, chunk int) *memConn {
	c := &memConn{chunk: chunk}
	c.r.Reset(data)
	return c
}

func (c *memConn) Read(p []byte) (int, error) {
	if c.chunk > 0 && len(p) > c.chunk {
		p = p[:c.chunk]
	}
	return c.r.Read(p)
}

func (c *memConn) Write(p []byte) (int, error)        { return c.written.Write(p) }
func (c *memConn) Close() error                       { c.closed = true; return nil }
func (c *memConn) LocalAddr() net.Addr                { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (c *memConn) RemoteAddr() net.Addr               { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2} }
func (c *memConn) SetDeadline(t time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(t time.Time) error { return nil }

// captureClientHello returns the first flight crypto/tls's client sends for
// cfg: one handshake record holding the ClientHello.
func captureClientHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	go func() {
		_ = tls.Client(b, cfg).Handshake()
		b.Close()
	}()
	_ = a.SetDeadline(time.Now().Add(10 * time.Second))
	hdr := make([]byte, recordHeaderLen)
	if _, err := io.ReadFull(a, hdr); err != nil {
		t.Fatalf("capture ClientHello: %v", err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(a, body); err != nil {
		t.Fatalf("capture ClientHello: %v", err)
	}
	return append(hdr, body...)
}

// refragment re-splits the handshake bytes of a one-record ClientHello into
// records of at most size bytes.
func refragment(record []byte, size int) []byte {
	var out []byte
	for msg := record[recordHeaderLen:]; len(msg) > 0; {
		n := min(size, len(msg))
		out = append(out, record[0], record[1], record[2], byte(n>>8), byte(n))
		out = append(out, msg[:n]...)
		msg = msg[n:]
	}
	return out
}
