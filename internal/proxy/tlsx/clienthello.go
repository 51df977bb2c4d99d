package tlsx

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// ClientHello is what a listener needs from a ClientHello to pick a filter
// chain (Envoy's tls_inspector).
type ClientHello struct {
	// IsTLS reports whether the connection starts with a TLS handshake
	// record (first byte 0x16).
	IsTLS bool
	// ServerName is the server_name (SNI) host name as sent, not
	// lower-cased; empty if absent.
	ServerName string
	// ALPN is the client's application_layer_protocol_negotiation list in
	// its order; nil if absent.
	ALPN []string
}

var (
	// ErrMalformedClientHello wraps every parse failure of
	// PeekClientHello.
	ErrMalformedClientHello = errors.New("tlsx: malformed client hello")
	// ErrClientHelloTooLarge is returned when the ClientHello and its
	// record headers would exceed MaxClientHelloSize.
	ErrClientHelloTooLarge = errors.New("tlsx: client hello too large")
)

// MaxClientHelloSize caps the bytes PeekClientHello buffers: the records
// carrying the ClientHello, headers included. It is Envoy's
// TLS_MAX_CLIENT_HELLO (tls_inspector max_client_hello_size) and crypto/tls's
// largest handshake message. Real ClientHellos are 0.5–2 KiB, larger with
// post-quantum key shares.
const MaxClientHelloSize = 64 << 10

const (
	recordHeaderLen     = 5
	recordTypeHandshake = 0x16
	maxRecordPlaintext  = 1 << 14 // RFC 8446 §5.1
	handshakeHeaderLen  = 4
	typeClientHello     = 1
	extServerName       = 0  // RFC 6066 §3
	extALPN             = 16 // RFC 7301 §3.1
	// initialPeekBuffer holds a whole typical ClientHello, so one Read
	// usually suffices.
	initialPeekBuffer = 4 << 10
)

// PeekClientHello reads from c until it knows whether the connection starts
// with a TLS ClientHello and, if so, has parsed its SNI and ALPN. Nothing is
// consumed: replay yields every byte read, then the rest of c, and passes
// writes, Close, deadlines and addresses through to c; its NetConn method
// returns c.
//
// When the first byte is not a TLS handshake record, PeekClientHello returns
// IsTLS false as soon as the first Read returns, without waiting for more.
// A ClientHello may span several records and any number of reads.
//
// PeekClientHello sets no deadline: the caller should set a read deadline on
// c first (Envoy's listener_filters_timeout) and clear it afterwards. On
// error, hello holds only IsTLS and replay is still valid, so the caller may
// close it or treat the connection as plaintext. Errors are a read error from
// c (io.EOF if c closed before sending anything, io.ErrUnexpectedEOF if
// within the ClientHello), ErrClientHelloTooLarge, or one wrapping
// ErrMalformedClientHello.
func PeekClientHello(c net.Conn) (hello ClientHello, replay net.Conn, err error) {
	p := peeker{c: c, buf: make([]byte, 0, initialPeekBuffer)}
	if err := p.fill(1); err != nil {
		return ClientHello{}, p.replay(), err
	}
	if p.buf[0] != recordTypeHandshake {
		return ClientHello{}, p.replay(), nil
	}
	body, err := p.readHandshake()
	if err == nil {
		err = parseClientHello(body, &hello)
	}
	if err != nil {
		return ClientHello{IsTLS: true}, p.replay(), err
	}
	hello.IsTLS = true
	return hello, p.replay(), nil
}

// peeker accumulates the bytes read from c.
type peeker struct {
	c   net.Conn
	buf []byte
}

func (p *peeker) replay() net.Conn { return &replayConn{Conn: p.c, buf: p.buf} }

// fill reads until buf holds at least n bytes. Each Read may return more,
// up to buf's capacity; those bytes are replayed like the rest.
func (p *peeker) fill(n int) error {
	if n > MaxClientHelloSize {
		return ErrClientHelloTooLarge
	}
	for len(p.buf) < n {
		if cap(p.buf) < n {
			nb := make([]byte, len(p.buf), min(max(n, 2*cap(p.buf)), MaxClientHelloSize))
			copy(nb, p.buf)
			p.buf = nb
		}
		m, err := p.c.Read(p.buf[len(p.buf):cap(p.buf)])
		p.buf = p.buf[:len(p.buf)+m]
		if err != nil && len(p.buf) < n {
			// A net.Conn repeats EOF and deadline errors, so an error
			// after enough bytes is left for the replay conn to meet.
			if err == io.EOF && len(p.buf) > 0 {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// readHandshake reads handshake records until they hold a whole ClientHello
// and returns its body (after the 4-byte handshake header). The body aliases
// p.buf when it fits one record, the common case.
func (p *peeker) readHandshake() ([]byte, error) {
	var msg []byte
	need := -1 // handshake message length with header, once known
	for off := 0; ; {
		if err := p.fill(off + recordHeaderLen); err != nil {
			return nil, err
		}
		h := p.buf[off : off+recordHeaderLen]
		if h[0] != recordTypeHandshake {
			return nil, malformed("record type %d before the end of the client hello", h[0])
		}
		if h[1] != 3 {
			return nil, malformed("record version %#02x%02x", h[1], h[2])
		}
		n := int(h[3])<<8 | int(h[4])
		if n == 0 || n > maxRecordPlaintext {
			// RFC 8446 §5.1 forbids empty handshake fragments.
			return nil, malformed("handshake record length %d", n)
		}
		end := off + recordHeaderLen + n
		if err := p.fill(end); err != nil {
			return nil, err
		}
		frag := p.buf[off+recordHeaderLen : end : end] // full slice: append must copy
		off = end
		if msg == nil {
			msg = frag
		} else {
			msg = append(msg, frag...)
		}
		if msg[0] != typeClientHello {
			return nil, malformed("handshake type %d, want client_hello", msg[0])
		}
		if need < 0 && len(msg) >= handshakeHeaderLen {
			need = handshakeHeaderLen + (int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3]))
			if need > MaxClientHelloSize {
				return nil, ErrClientHelloTooLarge
			}
		}
		if need >= 0 && len(msg) >= need {
			return msg[handshakeHeaderLen:need], nil
		}
	}
}

// parseClientHello extracts SNI and ALPN from a ClientHello body (RFC 8446
// §4.1.2; TLS 1.2 and earlier may omit the extensions block).
func parseClientHello(body []byte, h *ClientHello) error {
	r := reader(body)
	var sessionID, suites, compression, exts reader
	if !r.skip(2+32) || // legacy_version, random
		!r.u8Prefixed(&sessionID) || len(sessionID) > 32 ||
		!r.u16Prefixed(&suites) || len(suites) < 2 || len(suites)%2 != 0 ||
		!r.u8Prefixed(&compression) || len(compression) < 1 {
		return malformed("client hello header")
	}
	if len(r) == 0 {
		return nil
	}
	if !r.u16Prefixed(&exts) || len(r) != 0 {
		return malformed("extensions length")
	}
	var seenSNI, seenALPN bool
	for len(exts) > 0 {
		var typ uint16
		var data reader
		if !exts.u16(&typ) || !exts.u16Prefixed(&data) {
			return malformed("extension header")
		}
		switch typ {
		case extServerName:
			if seenSNI {
				return malformed("duplicate server_name extension")
			}
			seenSNI = true
			name, err := parseServerName(data)
			if err != nil {
				return err
			}
			h.ServerName = name
		case extALPN:
			if seenALPN {
				return malformed("duplicate application_layer_protocol_negotiation extension")
			}
			seenALPN = true
			protos, err := parseALPN(data)
			if err != nil {
				return err
			}
			h.ALPN = protos
		}
	}
	return nil
}

// parseServerName follows BoringSSL (what Envoy's tls_inspector runs), which
// is stricter than RFC 6066: exactly one entry, of type host_name, 1 to 255
// bytes with no NUL.
func parseServerName(data reader) (string, error) {
	var list, host reader
	var nameType uint8
	if !data.u16Prefixed(&list) || len(data) != 0 ||
		!list.u8(&nameType) || !list.u16Prefixed(&host) || len(list) != 0 {
		return "", malformed("server_name extension")
	}
	if nameType != 0 || len(host) == 0 || len(host) > 255 || containsNUL(host) {
		return "", malformed("server_name host_name")
	}
	return string(host), nil
}

// parseALPN requires a non-empty list of non-empty names (RFC 7301 §3.1).
func parseALPN(data reader) ([]string, error) {
	var list reader
	if !data.u16Prefixed(&list) || len(data) != 0 || len(list) == 0 {
		return nil, malformed("application_layer_protocol_negotiation extension")
	}
	n := 0
	for l := list; len(l) > 0; n++ {
		var p reader
		if !l.u8Prefixed(&p) || len(p) == 0 {
			return nil, malformed("application_layer_protocol_negotiation protocol name")
		}
	}
	protos := make([]string, 0, n)
	for len(list) > 0 {
		var p reader
		list.u8Prefixed(&p)
		protos = append(protos, protocolName(p))
	}
	return protos, nil
}

// protocolName avoids allocating for the common names: the compiler does
// not allocate for string(b) in a switch.
func protocolName(b []byte) string {
	switch string(b) {
	case "h2":
		return "h2"
	case "http/1.1":
		return "http/1.1"
	}
	return string(b)
}

func containsNUL(b []byte) bool {
	for _, c := range b {
		if c == 0 {
			return true
		}
	}
	return false
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedClientHello, fmt.Sprintf(format, args...))
}

// reader reads big-endian, length-prefixed TLS fields with bounds checks, in
// the manner of golang.org/x/crypto/cryptobyte (not a module dependency).
type reader []byte

func (r *reader) skip(n int) bool {
	if len(*r) < n {
		return false
	}
	*r = (*r)[n:]
	return true
}

func (r *reader) u8(out *uint8) bool {
	if len(*r) < 1 {
		return false
	}
	*out = (*r)[0]
	*r = (*r)[1:]
	return true
}

func (r *reader) u16(out *uint16) bool {
	if len(*r) < 2 {
		return false
	}
	*out = uint16((*r)[0])<<8 | uint16((*r)[1])
	*r = (*r)[2:]
	return true
}

func (r *reader) prefixed(n int, out *reader) bool {
	if len(*r) < n {
		return false
	}
	l := 0
	for _, b := range (*r)[:n] {
		l = l<<8 | int(b)
	}
	if len(*r)-n < l {
		return false
	}
	*out = (*r)[n : n+l]
	*r = (*r)[n+l:]
	return true
}

func (r *reader) u8Prefixed(out *reader) bool  { return r.prefixed(1, out) }
func (r *reader) u16Prefixed(out *reader) bool { return r.prefixed(2, out) }

// replayConn is a net.Conn that first returns the peeked bytes.
type replayConn struct {
	net.Conn
	mu      sync.Mutex
	buf     []byte
	drained atomic.Bool // buf is empty for good; Read skips the lock
}

func (c *replayConn) Read(p []byte) (int, error) {
	if !c.drained.Load() {
		c.mu.Lock()
		if len(c.buf) > 0 {
			n := copy(p, c.buf)
			c.buf = c.buf[n:]
			if len(c.buf) == 0 {
				c.buf = nil
				c.drained.Store(true)
			}
			c.mu.Unlock()
			return n, nil
		}
		c.drained.Store(true)
		c.mu.Unlock()
	}
	return c.Conn.Read(p)
}

// WriteTo writes the peeked bytes to w, then copies the rest of the
// connection with io.Copy from the underlying conn, so that a TCP-to-TCP
// proxy keeps the kernel's splice path.
func (c *replayConn) WriteTo(w io.Writer) (int64, error) {
	c.mu.Lock()
	b := c.buf
	c.buf = nil
	c.drained.Store(true)
	c.mu.Unlock()
	var n int64
	if len(b) > 0 {
		m, err := w.Write(b)
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	m, err := io.Copy(w, c.Conn)
	return n + m, err
}

// NetConn returns the underlying connection, as tls.Conn.NetConn does.
func (c *replayConn) NetConn() net.Conn { return c.Conn }
