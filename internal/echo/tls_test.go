package echo

import (
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
)

func TestTLS(t *testing.T) {
	certFile, keyFile, pool := testCert(t)
	s := startServer(t, Options{TLSCertFile: certFile, TLSKeyFile: keyFile})
	tests := []struct {
		name      string
		protos    *http.Protocols
		wantProto string
	}{
		{"h2 via ALPN", protocols(false, true, false), "HTTP/2.0"},
		{"http/1.1 via ALPN", protocols(true, false, false), "HTTP/1.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := client{tc.name, "https://" + s.Addr(), newClient(t, tc.protos, &tls.Config{RootCAs: pool})}
			resp, body := c.get(t, "/tls")
			if resp.Proto != tc.wantProto || resp.TLS == nil {
				t.Fatalf("response over %s (TLS %v), want %s over TLS", resp.Proto, resp.TLS != nil, tc.wantProto)
			}
			info := decodeInfo(t, body)
			if !info.TLS || info.Proto != tc.wantProto {
				t.Errorf("server saw tls=%v proto=%s, want true %s", info.TLS, info.Proto, tc.wantProto)
			}
			checkIdentity(t, resp.Header)
		})
	}
	t.Run("plaintext refused", func(t *testing.T) {
		c := clients(t, s)[0]
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, c.base+"/", nil)
		resp, err := c.Do(req)
		if err != nil {
			return // a closed connection is fine too
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plaintext request to a TLS port: status %d, want 400", resp.StatusCode)
		}
	})
}

func TestNewErrors(t *testing.T) {
	certFile, _, _ := testCert(t)
	tests := []struct {
		name string
		opts Options
		want []string
	}{
		{"bad http address", Options{HTTPAddr: "nocolon"}, []string{"http address"}},
		{"bad tcp address", Options{TCPAddr: "x"}, []string{"tcp address"}},
		{"cert without key", Options{TLSCertFile: certFile}, []string{"cert and key"}},
		{"missing files", Options{TLSCertFile: "/nonexistent", TLSKeyFile: "/nonexistent"}, []string{"tls:"}},
		{"name with newline", Options{Name: "a\nb"}, []string{"name"}},
		{"every error at once", Options{HTTPAddr: "x", TCPAddr: "y", TLSKeyFile: "k"}, []string{"http address", "tcp address", "cert and key"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts)
			if err == nil {
				t.Fatal("New succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
