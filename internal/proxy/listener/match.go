package listener

import (
	"bufio"
	"bytes"
	"net"
	"strings"
)

// connInfo is what filter-chain matching looks at.
type connInfo struct {
	port      uint32
	sni       string
	transport string // "tls" or "raw_buffer"
	alpn      []string
}

// match picks the filter chain for a connection following Envoy's order:
// destination port, server name (exact, then longest wildcard), transport
// protocol, application protocols; at each step a chain that names the
// criterion beats one that leaves it open. Returns nil when none matches.
func (l *Listener) match(ci *connInfo) *Chain {
	cands := l.chains
	cands = narrow(cands, func(c *Chain) int {
		switch {
		case c.match.port == 0:
			return 1
		case c.match.port == ci.port:
			return 2
		}
		return 0
	})
	cands = narrow(cands, func(c *Chain) int {
		if len(c.match.serverNames) == 0 {
			return 1
		}
		best := 0
		for _, n := range c.match.serverNames {
			switch {
			case n == ci.sni:
				return 1 << 20
			case strings.HasPrefix(n, "*.") && strings.HasSuffix(ci.sni, n[1:]) && len(ci.sni) > len(n)-1:
				best = max(best, 1+len(n))
			}
		}
		return best
	})
	cands = narrow(cands, func(c *Chain) int {
		switch c.match.transport {
		case "":
			return 1
		case ci.transport:
			return 2
		}
		return 0
	})
	cands = narrow(cands, func(c *Chain) int {
		if len(c.match.alpn) == 0 {
			return 1
		}
		for _, p := range c.match.alpn {
			for _, q := range ci.alpn {
				if p == q {
					return 2
				}
			}
		}
		return 0
	})
	if len(cands) > 0 {
		return cands[0]
	}
	return l.defaultChain
}

// narrow keeps the chains with the highest non-zero score.
func narrow(cs []*Chain, score func(*Chain) int) []*Chain {
	best := 0
	for _, c := range cs {
		best = max(best, score(c))
	}
	if best == 0 {
		return nil
	}
	var out []*Chain
	for _, c := range cs {
		if score(c) == best {
			out = append(out, c)
		}
	}
	return out
}

// peekConn replays bytes peeked by the HTTP inspector.
type peekConn struct {
	net.Conn
	br *bufio.Reader
}

func (c *peekConn) Read(p []byte) (int, error) { return c.br.Read(p) }

// CloseWrite half-closes the underlying TCP connection.
func (c *peekConn) CloseWrite() error { return closeWrite(c.Conn) }

// NetConn returns the wrapped connection.
func (c *peekConn) NetConn() net.Conn { return c.Conn }

func closeWrite(c net.Conn) error {
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

var h2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

// inspectHTTP reads just enough of c to tell HTTP/2 prior knowledge ("h2c")
// from HTTP/1.x ("http/1.1"), as Envoy's http_inspector does. It returns ""
// for anything else.
func inspectHTTP(c net.Conn) (string, net.Conn) {
	br := bufio.NewReaderSize(c, 4096)
	pc := &peekConn{Conn: c, br: br}
	want := 1
	for {
		b, err := br.Peek(want)
		if !bytes.HasPrefix(h2Preface, b) {
			if looksHTTP1(b) {
				return "http/1.1", pc
			}
			return "", pc
		}
		if len(b) == len(h2Preface) {
			return "h2c", pc
		}
		if err != nil {
			return "", pc
		}
		want = len(b) + 1
	}
}

func looksHTTP1(b []byte) bool {
	for _, c := range b {
		if c == ' ' {
			return true
		}
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}
