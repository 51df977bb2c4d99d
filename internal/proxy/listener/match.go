package listener

import (
	"bufio"
	"net"
	"strings"

	"github.com/trellis-mesh/trellis/internal/proxy/hcm"
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

func closeWrite(c net.Conn) error {
	return (&hcm.BufferedConn{Conn: c}).CloseWrite()
}

// inspectHTTP reads just enough of c to tell HTTP/2 prior knowledge ("h2c")
// from HTTP/1.x ("http/1.1"), as Envoy's http_inspector does. It returns ""
// for anything else, and a connection that replays what was read.
func inspectHTTP(c net.Conn) (string, net.Conn) {
	br := bufio.NewReaderSize(c, 4096)
	pc := &hcm.BufferedConn{Conn: c, R: br}
	if hcm.IsH2Preface(br) {
		return "h2c", pc
	}
	if b, _ := br.Peek(br.Buffered()); len(b) > 0 && looksHTTP1(b) {
		return "http/1.1", pc
	}
	return "", pc
}

// looksHTTP1 reports whether b starts like an HTTP/1.x request line: an
// upper-case method token followed by a space.
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
