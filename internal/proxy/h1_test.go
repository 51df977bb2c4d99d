package proxy_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawExchange writes raw bytes to the proxy and returns everything it
// answers until it closes the connection or stays quiet for a moment.
func rawExchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b, _ := io.ReadAll(c)
	return string(b)
}

// TestHTTP1Edges covers the corners of HTTP/1.x the proxy's own server
// handles: 100-continue, HTTP/1.0, HEAD, malformed and oversized requests.
func TestHTTP1Edges(t *testing.T) {
	base, _ := routingSetup(t)
	addr := strings.TrimPrefix(base, "http://")

	t.Run("expect 100-continue", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "POST /x?echo_body=1 HTTP/1.1\r\nHost: app.local\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
		br := bufio.NewReader(c)
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 Continue") {
			t.Fatalf("got %q %v", line, err)
		}
		br.ReadString('\n')
		io.WriteString(c, "hello")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != "hello" {
			t.Fatalf("%d %q", resp.StatusCode, b)
		}
	})
	t.Run("expect 100-continue refused before the body", func(t *testing.T) {
		out := rawExchange(t, addr, "POST /x HTTP/1.1\r\nHost: nowhere.local\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
		if !strings.HasPrefix(out, "HTTP/1.1 404") || strings.Contains(out, "100 Continue") {
			t.Fatalf("got %q", out)
		}
	})
	t.Run("HTTP/1.0 without keep-alive closes", func(t *testing.T) {
		out := rawExchange(t, addr, "GET /health HTTP/1.0\r\nHost: app.local\r\n\r\n")
		if !strings.HasPrefix(out, "HTTP/1.1 200") || !strings.HasSuffix(out, "fine") {
			t.Fatalf("got %q", out)
		}
	})
	t.Run("HEAD has no body", func(t *testing.T) {
		out := rawExchange(t, addr, "HEAD /x?size=100 HTTP/1.1\r\nHost: app.local\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(out, "HTTP/1.1 200") || !strings.Contains(out, "Content-Length: 100") || !strings.HasSuffix(out, "\r\n\r\n") {
			t.Fatalf("got %q", out)
		}
	})
	t.Run("malformed request", func(t *testing.T) {
		out := rawExchange(t, addr, "GARBAGE\r\n\r\n")
		if !strings.HasPrefix(out, "HTTP/1.1 400") || !strings.Contains(out, "malformed HTTP request") {
			t.Fatalf("got %q", out)
		}
	})
	t.Run("oversized headers", func(t *testing.T) {
		out := rawExchange(t, addr, "GET / HTTP/1.1\r\nHost: app.local\r\nX-Big: "+strings.Repeat("a", 70<<10)+"\r\n\r\n")
		if !strings.HasPrefix(out, "HTTP/1.1 431") {
			t.Fatalf("got %.80q", out)
		}
	})
	t.Run("upstream response headers pass through", func(t *testing.T) {
		resp, _, _ := get(t, http.DefaultClient, base+"/x?header=x-ok:fine", map[string]string{"Host": "app.local"})
		if resp.Header.Get("X-Ok") != "fine" {
			t.Fatalf("header control: %v", resp.Header)
		}
	})
}
