package echo

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"testing"
)

// TestEchoBodyLarge streams a large chunked body through echo_body and
// compares checksums, so nothing is held in memory on the test side either.
func TestEchoBodyLarge(t *testing.T) {
	const size = 64 << 20
	s := startServer(t, Options{})
	for _, c := range clients(t, s) {
		t.Run(c.name, func(t *testing.T) {
			sent := sha256.New()
			body := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{1}), size), sent)
			// Hide the length so the request is chunked (HTTP/1.1) or has no
			// content-length (h2).
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, c.base+"/?echo_body=1", io.NopCloser(body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got := sha256.New()
			n, err := io.Copy(got, resp.Body)
			if err != nil {
				t.Fatalf("read echo after %d bytes: %v", n, err)
			}
			if n != size {
				t.Fatalf("echoed %d bytes, want %d", n, size)
			}
			if !bytes.Equal(got.Sum(nil), sent.Sum(nil)) {
				t.Error("echoed body differs from the request body")
			}
		})
	}
}

// TestEchoBodyInteractive sends a piece, reads its echo, then sends the
// next: the server streams rather than waiting for the whole body.
func TestEchoBodyInteractive(t *testing.T) {
	s := startServer(t, Options{})
	for _, c := range clients(t, s) {
		t.Run(c.name, func(t *testing.T) {
			pr, pw := io.Pipe()
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, c.base+"/", pr)
			req.Header.Set("X-Echo-Echo-Body", "true")
			req.Header.Set("Content-Type", "text/x-test")
			// Go's HTTP/1.1 client may hold the request header back until
			// the first body bytes, so send some before awaiting the response.
			go pw.Write([]byte("0"))
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if got := resp.Header.Get("Content-Type"); got != "text/x-test" {
				t.Errorf("Content-Type %q, want the request's", got)
			}
			buf := make([]byte, 16)
			if _, err := io.ReadFull(resp.Body, buf[:1]); err != nil || buf[0] != '0' {
				t.Fatalf("first echo %q, %v", buf[:1], err)
			}
			for i := 1; i < 5; i++ {
				msg := []byte("piece " + strconv.Itoa(i))
				if _, err := pw.Write(msg); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(resp.Body, buf[:len(msg)]); err != nil {
					t.Fatalf("echo of %q: %v", msg, err)
				}
				if !bytes.Equal(buf[:len(msg)], msg) {
					t.Fatalf("echo %q, want %q", buf[:len(msg)], msg)
				}
			}
			pw.Close()
			if rest, err := io.ReadAll(resp.Body); err != nil || len(rest) != 0 {
				t.Errorf("after close: %q, %v; want clean EOF", rest, err)
			}
		})
	}
}

func TestEchoBodyContentLength(t *testing.T) {
	s := startServer(t, Options{})
	for _, c := range clients(t, s) {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, c.base+"/?echo_body=1&status=201", bytes.NewReader([]byte("hello")))
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusCreated || string(body) != "hello" || resp.ContentLength != 5 {
				t.Errorf("got %d %q (length %d), want 201 \"hello\" (5)", resp.StatusCode, body, resp.ContentLength)
			}
		})
	}
}
