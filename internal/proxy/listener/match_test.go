package listener

import (
	"net"
	"strings"
	"testing"
)

func chain(name string, m chainMatch) *Chain { return &Chain{Name: name, match: m} }

func TestMatch(t *testing.T) {
	l := &Listener{
		chains: []*Chain{
			chain("any", chainMatch{}),
			chain("port-443", chainMatch{port: 443}),
			chain("tls-any", chainMatch{port: 443, transport: "tls"}),
			chain("exact-sni", chainMatch{port: 443, serverNames: []string{"api.example.com"}}),
			chain("wild-sni", chainMatch{port: 443, serverNames: []string{"*.example.com"}}),
			chain("longer-wild", chainMatch{port: 443, serverNames: []string{"*.eu.example.com"}}),
			chain("h2", chainMatch{port: 443, transport: "tls", alpn: []string{"h2"}}),
			chain("h2c", chainMatch{port: 80, alpn: []string{"h2c"}}),
		},
		defaultChain: chain("default", chainMatch{}),
	}
	tests := []struct {
		name string
		ci   connInfo
		want string
	}{
		{name: "other port falls to the open chain", ci: connInfo{port: 8080, transport: "raw_buffer"}, want: "any"},
		{name: "port beats open", ci: connInfo{port: 443, transport: "raw_buffer"}, want: "port-443"},
		{name: "transport tls", ci: connInfo{port: 443, transport: "tls"}, want: "tls-any"},
		{name: "alpn beats no alpn", ci: connInfo{port: 443, transport: "tls", alpn: []string{"http/1.1", "h2"}}, want: "h2"},
		{name: "exact sni beats wildcard", ci: connInfo{port: 443, sni: "api.example.com", transport: "tls"}, want: "exact-sni"},
		{name: "wildcard sni", ci: connInfo{port: 443, sni: "www.example.com", transport: "tls"}, want: "wild-sni"},
		{name: "longest wildcard", ci: connInfo{port: 443, sni: "a.eu.example.com", transport: "tls"}, want: "longer-wild"},
		{name: "sni unknown uses chains without names", ci: connInfo{port: 443, sni: "x.org", transport: "tls"}, want: "tls-any"},
		{name: "http inspector h2c", ci: connInfo{port: 80, alpn: []string{"h2c"}, transport: "raw_buffer"}, want: "h2c"},
		// Envoy does not backtrack: port 80 selects the port-80 branch, whose
		// only chain wants h2c, so the connection goes to the default chain.
		{name: "no backtracking to a less specific port", ci: connInfo{port: 80, alpn: []string{"http/1.1"}, transport: "raw_buffer"}, want: "default"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := l.match(&tc.ci)
			if got == nil || got.Name != tc.want {
				t.Fatalf("matched %v, want %q", got, tc.want)
			}
		})
	}
	// Without an open chain, an unmatched connection gets the default.
	l2 := &Listener{chains: []*Chain{chain("only-443", chainMatch{port: 443})}, defaultChain: chain("default", chainMatch{})}
	if got := l2.match(&connInfo{port: 80}); got == nil || got.Name != "default" {
		t.Fatalf("default chain: %v", got)
	}
	l2.defaultChain = nil
	if got := l2.match(&connInfo{port: 80}); got != nil {
		t.Fatalf("no chain should match, got %q", got.Name)
	}
}

func TestInspectHTTP(t *testing.T) {
	tests := []struct{ name, input, want string }{
		{name: "http/1.1 GET", input: "GET / HTTP/1.1\r\n\r\n", want: "http/1.1"},
		{name: "http/1.1 POST shares the preface's first letter", input: "POST /x HTTP/1.1\r\n\r\n", want: "http/1.1"},
		{name: "h2c preface", input: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", want: "h2c"},
		{name: "binary", input: "\x16\x03\x01", want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := net.Pipe()
			defer a.Close()
			go func() { _, _ = b.Write([]byte(tc.input)); b.Close() }()
			got, replay := inspectHTTP(a)
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			var sb strings.Builder
			buf := make([]byte, 64)
			for sb.Len() < len(tc.input) {
				n, err := replay.Read(buf)
				sb.Write(buf[:n])
				if err != nil {
					break
				}
			}
			if sb.String() != tc.input {
				t.Fatalf("replay %q, want %q", sb.String(), tc.input)
			}
		})
	}
}
