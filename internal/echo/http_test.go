package echo

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestDefaultResponse(t *testing.T) {
	s := startServer(t, Options{})
	for _, c := range clients(t, s) {
		t.Run(c.name, func(t *testing.T) {
			resp, body := c.get(t, "/a/b?x=1&x=2&y=z", "X-Custom", "one", "X-Custom", "two")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200: %s", resp.StatusCode, body)
			}
			if got := resp.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type %q, want application/json", got)
			}
			got := decodeInfo(t, body)
			want := RequestInfo{
				Name:    testName,
				Version: testVersion,
				Method:  http.MethodGet,
				Path:    "/a/b",
				Query:   url.Values{"x": {"1", "2"}, "y": {"z"}},
				Host:    s.Addr(),
				Proto:   map[string]string{"http1": "HTTP/1.1", "h2c": "HTTP/2.0"}[c.name],
				Headers: http.Header{"X-Custom": {"one", "two"}},
			}
			opts := cmp.Options{
				cmpopts.IgnoreFields(RequestInfo{}, "RemoteAddr"),
				// Headers the Go client adds on its own.
				cmpopts.IgnoreMapEntries(func(k string, _ []string) bool {
					return k == "Accept-Encoding" || k == "User-Agent"
				}),
			}
			if diff := cmp.Diff(want, got, opts); diff != "" {
				t.Errorf("description (-want +got):\n%s", diff)
			}
			if !strings.HasPrefix(got.RemoteAddr, "127.0.0.1:") {
				t.Errorf("remote_addr %q, want 127.0.0.1:port", got.RemoteAddr)
			}
			checkIdentity(t, resp.Header)
		})
	}
}

func checkIdentity(t *testing.T, h http.Header) {
	t.Helper()
	if got := h.Values("X-Echo-Name"); !cmp.Equal(got, []string{testName}) {
		t.Errorf("x-echo-name %q, want [%s]", got, testName)
	}
	if got := h.Values("X-Echo-Version"); !cmp.Equal(got, []string{testVersion}) {
		t.Errorf("x-echo-version %q, want [%s]", got, testVersion)
	}
}

func TestControls(t *testing.T) {
	tests := []struct {
		name       string
		path       string
		hdr        []string
		wantStatus int
		wantHeader http.Header
		wantBody   string // exact, if set
	}{
		{name: "status query", path: "/?status=418", wantStatus: 418},
		{name: "status header", path: "/", hdr: []string{"X-Echo-Status", "201"}, wantStatus: 201},
		{name: "query wins over header", path: "/?status=202", hdr: []string{"X-Echo-Status", "201"}, wantStatus: 202},
		{name: "no content", path: "/?status=204&size=10", wantStatus: 204, wantBody: ""},
		{name: "fail=1", path: "/?fail=1", wantStatus: 503, wantBody: "echo: injected failure\n"},
		{name: "fail=1 header", path: "/", hdr: []string{"X-Echo-Fail", "1"}, wantStatus: 503},
		{name: "fail_status", path: "/?fail=1&fail_status=500", wantStatus: 500},
		{name: "fail-status header spelling", path: "/?fail=1", hdr: []string{"X-Echo-Fail-Status", "429"}, wantStatus: 429},
		{name: "fail=0", path: "/?fail=0&size=3", wantStatus: 200, wantBody: "ABC"},
		{name: "reset=0", path: "/?reset=0&size=3", wantStatus: 200, wantBody: "ABC"},
		{name: "size=0", path: "/?size=0", wantStatus: 200, wantBody: ""},
		{name: "size with unit", path: "/?size=1Ki", wantStatus: 200, wantBody: strings.Repeat(payloadPattern, 16)},
		{name: "size header", path: "/", hdr: []string{"X-Echo-Size", "5"}, wantStatus: 200, wantBody: "ABCDE"},
		{name: "delay=1ms", path: "/?delay=1ms&size=1", wantStatus: 200, wantBody: "A"},
		{
			name:       "headers repeatable",
			path:       "/?header=x-a:1&header=X-A:2&size=0",
			hdr:        []string{"X-Echo-Header", "x-b: three"},
			wantStatus: 200,
			wantHeader: http.Header{"X-A": {"1", "2"}, "X-B": {"three"}},
		},
		{
			name:       "header on failure",
			path:       "/?fail=1&header=x-a:1",
			wantStatus: 503,
			wantHeader: http.Header{"X-A": {"1"}},
		},
		{name: "escaped value", path: "/?header=x-a%3Ahello%20world&size=0", wantStatus: 200, wantHeader: http.Header{"X-A": {"hello world"}}},
	}
	s := startServer(t, Options{})
	for _, c := range clients(t, s) {
		t.Run(c.name, func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					resp, body := c.get(t, tc.path, tc.hdr...)
					if resp.StatusCode != tc.wantStatus {
						t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.wantStatus, body)
					}
					if tc.wantBody != "" || strings.Contains(tc.name, "size") || tc.wantStatus == 204 {
						if string(body) != tc.wantBody {
							t.Errorf("body %q, want %q", body, tc.wantBody)
						}
					}
					for k, want := range tc.wantHeader {
						if got := resp.Header.Values(k); !cmp.Equal(got, want) {
							t.Errorf("header %s = %q, want %q", k, got, want)
						}
					}
					checkIdentity(t, resp.Header)
				})
			}
		})
	}
}

func TestBadControls(t *testing.T) {
	tests := []struct {
		name     string
		path     string
		hdr      []string
		wantText string
	}{
		{"status not a number", "/?status=abc", nil, "invalid status"},
		{"status 1xx", "/?status=101", nil, "invalid status"},
		{"status too big", "/?status=600", nil, "invalid status"},
		{"size negative", "/?size=-1", nil, "invalid size"},
		{"size unit", "/?size=3Xi", nil, "invalid size"},
		{"size too big", "/?size=2048Gi", nil, "invalid size"},
		{"delay", "/?delay=soon", nil, "invalid delay"},
		{"delay negative", "/?delay=-1s", nil, "invalid delay"},
		{"delay header", "/", []string{"X-Echo-Delay", "1"}, "invalid delay"},
		{"fail > 1", "/?fail=1.5", nil, "invalid fail"},
		{"fail NaN", "/?fail=NaN", nil, "invalid fail"},
		{"fail_status", "/?fail=1&fail_status=99", nil, "invalid fail_status"},
		{"reset", "/?reset=-0.1", nil, "invalid reset"},
		{"echo_body", "/?echo_body=maybe", nil, "invalid echo_body"},
		{"chunks", "/?chunks=-2", nil, "invalid chunks"},
		{"chunk_delay", "/?chunks=2&chunk_delay=x", nil, "invalid chunk_delay"},
		{"header without colon", "/?header=x-a", nil, "invalid header"},
		{"header bad name", "/?header=x%20a:1", nil, "invalid header"},
		{"header CRLF injection", "/?header=x-a:1%0D%0AX-B:2", nil, "invalid header"},
		{"trailer forbidden", "/?trailer=content-length:1", nil, "invalid trailer"},
		{"bad escaping", "/?status=%zz", nil, "invalid status"},
	}
	s := startServer(t, Options{})
	c := clients(t, s)[0]
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := c.get(t, tc.path, tc.hdr...)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", resp.StatusCode, body)
			}
			if !strings.Contains(string(body), tc.wantText) {
				t.Errorf("body %q does not name the control: want %q", body, tc.wantText)
			}
		})
	}
}

func TestSizeLarge(t *testing.T) {
	s := startServer(t, Options{})
	const size = 10 << 20
	for _, c := range clients(t, s) {
		t.Run(c.name, func(t *testing.T) {
			resp, body := c.get(t, "/?size=10Mi")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if resp.ContentLength != size {
				t.Errorf("Content-Length %d, want %d", resp.ContentLength, size)
			}
			if len(body) != size {
				t.Fatalf("got %d bytes, want %d", len(body), size)
			}
			if i := checkPattern(body, 0); i >= 0 {
				t.Fatalf("byte %d breaks the payload pattern", i)
			}
		})
	}
}

func TestDelay(t *testing.T) {
	s := startServer(t, Options{})
	for _, c := range clients(t, s) {
		t.Run(c.name, func(t *testing.T) {
			// The server must not answer before the delay: the client's
			// deadline, far shorter, expires first.
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			defer cancel()
			for _, tc := range []struct{ name, path, hdr string }{
				{"query", "/?delay=1h", ""},
				{"header", "/", "1h"},
			} {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.base+tc.path, nil)
				if tc.hdr != "" {
					req.Header.Set("X-Echo-Delay", tc.hdr)
				}
				resp, err := c.Do(req)
				if err == nil {
					resp.Body.Close()
					t.Fatalf("%s: got status %d before the delay", tc.name, resp.StatusCode)
				}
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("%s: err %v, want the client deadline", tc.name, err)
				}
			}
		})
	}
}

func TestReset(t *testing.T) {
	s := startServer(t, Options{})
	for _, c := range clients(t, s) {
		t.Run(c.name, func(t *testing.T) {
			for _, path := range []string{"/?reset=1", "/?reset=1&size=100", "/?reset=1&fail=1"} {
				req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, c.base+path, nil)
				resp, err := c.Do(req)
				if err == nil {
					resp.Body.Close()
					t.Fatalf("%s: got status %d, want no response", path, resp.StatusCode)
				}
			}
			// The server, and for h2c the connection, still serve.
			if resp, _ := c.get(t, "/?reset=0"); resp.StatusCode != http.StatusOK {
				t.Errorf("after reset: status %d", resp.StatusCode)
			}
		})
	}
}

func TestTrailers(t *testing.T) {
	s := startServer(t, Options{})
	for _, c := range clients(t, s) {
		for _, body := range []string{"", "&size=100", "&chunks=2", "&echo_body=1"} {
			t.Run(c.name+body, func(t *testing.T) {
				resp, _ := c.get(t, "/?trailer=x-t1:one&trailer=X-T2:two&header=x-h:h"+body, "X-Echo-Trailer", "x-t3:three")
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d", resp.StatusCode)
				}
				want := http.Header{"X-T1": {"one"}, "X-T2": {"two"}, "X-T3": {"three"}}
				if diff := cmp.Diff(want, resp.Trailer); diff != "" {
					t.Errorf("trailers (-want +got):\n%s", diff)
				}
				if got := resp.Header.Get("X-H"); got != "h" {
					t.Errorf("header X-H %q, want h", got)
				}
			})
		}
	}
}

func TestChunks(t *testing.T) {
	s := startServer(t, Options{})
	for _, c := range clients(t, s) {
		t.Run(c.name, func(t *testing.T) {
			resp, body := c.get(t, "/?chunks=3&chunk_delay=1ms")
			if want := "chunk 1 of 3\nchunk 2 of 3\nchunk 3 of 3\n"; string(body) != want {
				t.Errorf("body %q, want %q", body, want)
			}
			if c.name == "http1" && !cmp.Equal(resp.TransferEncoding, []string{"chunked"}) {
				t.Errorf("Transfer-Encoding %q, want chunked", resp.TransferEncoding)
			}

			// With size, the payload is split across the chunks and its
			// pattern runs on unbroken.
			_, body = c.get(t, "/?chunks=3&size=200")
			if len(body) != 200 || checkPattern(body, 0) >= 0 {
				t.Errorf("chunked sized body %q is not 200 pattern bytes", body)
			}

			// Each chunk is flushed: the first arrives while the server still
			// waits an hour before the second.
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, c.base+"/?chunks=2&chunk_delay=1h", nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			first := make([]byte, len("chunk 1 of 2\n"))
			if _, err := io.ReadFull(resp.Body, first); err != nil {
				t.Fatalf("read first chunk: %v", err)
			}
			if string(first) != "chunk 1 of 2\n" {
				t.Errorf("first chunk %q", first)
			}
		})
	}
}

func TestHealthzAndStats(t *testing.T) {
	s := startServer(t, Options{})
	c := clients(t, s)[0]
	resp, body := c.get(t, "/healthz")
	if resp.StatusCode != http.StatusOK || string(body) != "ok\n" {
		t.Errorf("/healthz: %d %q, want 200 ok", resp.StatusCode, body)
	}
	for range 3 {
		c.get(t, "/anything")
	}
	_, body = c.get(t, "/echo/stats")
	if want := `{"requests":3,"tcp_connections":0}` + "\n"; string(body) != want {
		t.Errorf("/echo/stats %s, want %s", body, want)
	}
	if got := s.Stats(); got.Requests != 3 {
		t.Errorf("Stats().Requests = %d, want 3 (health and stats are not counted)", got.Requests)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"0", 0}, {"1024", 1024}, {"1Ki", 1 << 10}, {"10Mi", 10 << 20}, {"2Gi", 2 << 30},
		{"1k", 1000}, {"1K", 1000}, {"3M", 3e6}, {"1G", 1e9}, {"1024Gi", 1 << 40},
	}
	for _, tc := range tests {
		if got, err := parseSize(tc.in); err != nil || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "-1", "1.5", "Ki", "1Ti", "1025Gi", strconv.Itoa(1<<40 + 1)} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q): want error", in)
		}
	}
}
