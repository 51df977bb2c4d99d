package hcm_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/internal/telemetry/tap"
)

// tapBodyHCM is benchHCM with a retrying route.
const tapBodyHCM = `
stat_prefix: bench
route_config:
  virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
    - {name: direct, match: {path: /direct}, direct_response: {status: 200, body: {inline_string: "ok"}}}
    - {name: retry, match: {path: /retry}, route: {cluster: up, retry_policy: {retry_on: "5xx", num_retries: 1}}}
    - {name: fwd, match: {prefix: /}, route: {cluster: up}}
http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
`

// TestTapBodies serves real requests over HTTP/1.1 and h2c through a
// forwarding route to a real upstream that echoes the request body, with
// a tap asking for the first 8 bytes of POST bodies: the events carry
// the first bytes of both bodies with the truncation flags, binary
// bodies (a gRPC frame) in base64, and the downstream gets the response
// unchanged however large it is; a retried request body is captured once. A subscription without bodies gets
// none.
func TestTapBodies(t *testing.T) {
	var retried atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("upstream: reading the body: %v", err)
		}
		if r.URL.Path == "/retry" && retried.Add(1)%2 == 1 {
			w.WriteHeader(http.StatusServiceUnavailable) // the first attempt fails
			_, _ = w.Write([]byte("try again"))
			return
		}
		_, _ = w.Write(append([]byte("echo:"), b...))
	}))
	t.Cleanup(up.Close)
	_, port, _ := net.SplitHostPort(up.Listener.Addr().String())
	tp := tap.New(16)
	s := tapServerTo(t, tp, port, tapBodyHCM)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = s.Serve(c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	base := "http://" + ln.Addr().String()

	tp.Subscribe(tap.Subscription{ID: "body", Match: tap.Match{Method: "POST"}, Body: 8, MaxRPS: 1000})
	tp.Subscribe(tap.Subscription{ID: "plain", Match: tap.Match{Method: "GET"}, MaxRPS: 1000})
	tp.Subscribe(tap.Subscription{ID: "retry", Match: tap.Match{Method: "PUT"}, Body: 64, MaxRPS: 1000})
	event := func(t *testing.T) *tap.FromProxy {
		t.Helper()
		select {
		case m := <-tp.Events():
			return m
		case <-time.After(5 * time.Second):
			t.Fatal("no tap event within 5s")
			return nil
		}
	}
	grpcFrame := []byte{0, 0, 0, 0, 3, 'a', 'b', 'c'}
	big := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB

	h2 := &http.Transport{Protocols: new(http.Protocols)}
	h2.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(h2.CloseIdleConnections)
	h1 := &http.Transport{}
	t.Cleanup(h1.CloseIdleConnections)
	for _, proto := range []struct {
		name  string
		major int
		rt    http.RoundTripper
	}{{"HTTP/1.1", 1, h1}, {"h2c", 2, h2}} {
		t.Run(proto.name, func(t *testing.T) {
			client := &http.Client{Transport: proto.rt}
			do := func(method, path, ctype string, body []byte) []byte {
				t.Helper()
				var rd io.Reader
				if body != nil {
					rd = bytes.NewReader(body)
				}
				req, _ := http.NewRequest(method, base+path, rd)
				if ctype != "" {
					req.Header.Set("Content-Type", ctype)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				got, err := io.ReadAll(resp.Body)
				if err != nil || resp.StatusCode != 200 || resp.ProtoMajor != proto.major {
					t.Fatalf("%s %s: %s %s, %v", method, path, resp.Proto, resp.Status, err)
				}
				return got
			}

			if got := do("POST", "/up", "text/plain", []byte("hello tap body")); string(got) != "echo:hello tap body" {
				t.Fatalf("response %q: the tee changed it", got)
			}
			m := event(t)
			e := m.Event
			if m.Sub != "body" || e.RequestBody == nil || *e.RequestBody != "hello ta" || !e.RequestBodyTruncated || e.RequestBodyEncoding != "" ||
				e.ResponseBody == nil || *e.ResponseBody != "echo:hel" || !e.ResponseBodyTruncated || e.ResponseBodyEncoding != "" || e.BytesIn != 14 {
				t.Errorf("text bodies: %s %+v", m.Sub, e)
			}

			if got := do("POST", "/grpc", "application/grpc", grpcFrame); !bytes.Equal(got, append([]byte("echo:"), grpcFrame...)) {
				t.Fatalf("response %q: the tee changed it", got)
			}
			e = event(t).Event
			if e.RequestBody == nil || *e.RequestBody != base64.StdEncoding.EncodeToString(grpcFrame) || e.RequestBodyEncoding != tap.EncodingBase64 ||
				e.RequestBodyTruncated || e.ResponseBody == nil || *e.ResponseBody != base64.StdEncoding.EncodeToString([]byte("echo:\x00\x00\x00")) ||
				e.ResponseBodyEncoding != tap.EncodingBase64 || !e.ResponseBodyTruncated {
				t.Errorf("gRPC frame: %+v", e)
			}

			if got := do("POST", "/big", "", big); len(got) != len(big)+5 || !bytes.Equal(got[5:], big) {
				t.Fatalf("a %d-byte body came back as %d bytes", len(big), len(got))
			}
			e = event(t).Event
			if e.RequestBody == nil || *e.RequestBody != "01234567" || !e.RequestBodyTruncated || e.BytesIn != int64(len(big)) ||
				e.ResponseBody == nil || *e.ResponseBody != "echo:012" || e.BytesOut != int64(len(big)+5) {
				t.Errorf("big body: %+v", e)
			}

			// A retried request: the body is replayed to the second
			// attempt from the retry buffer and captured once; the
			// response is the one sent downstream.
			if got := do("PUT", "/retry", "", []byte("hello tap body")); string(got) != "echo:hello tap body" {
				t.Fatalf("retried response %q", got)
			}
			if n := retried.Load(); n == 0 || n%2 != 0 {
				t.Fatalf("%d upstream attempts so far; want two per retried request", n)
			}
			m = event(t)
			e = m.Event
			if m.Sub != "retry" || e.RequestBody == nil || *e.RequestBody != "hello tap body" || e.RequestBodyTruncated || e.BytesIn != 14 ||
				e.ResponseBody == nil || *e.ResponseBody != "echo:hello tap body" || e.ResponseBodyTruncated {
				t.Errorf("retried request: %s %+v", m.Sub, e)
			}

			// A direct response: the body the connection manager writes
			// itself; no request body.
			do("POST", "/direct", "", nil)
			e = event(t).Event
			if e.RequestBody == nil || *e.RequestBody != "" || e.RequestBodyTruncated || e.ResponseBody == nil || *e.ResponseBody != "ok" || e.ResponseBodyTruncated {
				t.Errorf("direct response: %+v", e)
			}

			// The subscription without bodies.
			do("GET", "/up", "", nil)
			m = event(t)
			if m.Sub != "plain" || m.Event.RequestBody != nil || m.Event.ResponseBody != nil {
				t.Errorf("a subscription without bodies: %s %+v", m.Sub, m.Event)
			}
		})
	}
}
