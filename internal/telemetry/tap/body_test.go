package tap

import (
	"bytes"
	"encoding/base64"
	"strings"
	"sync"
	"testing"
)

// TestCaptureBound writes a body in pieces: the capture keeps the first
// limit bytes, never more, and says whether the body went past them.
func TestCaptureBound(t *testing.T) {
	for _, tc := range []struct {
		name     string
		limit    int
		declared int64
		writes   []string
		n        int // Bytes(n)
		want     string
		cut      bool
	}{
		{"fits", 16, -1, []string{"hello", " world"}, 16, "hello world", false},
		{"cut in a write", 8, -1, []string{"hello", " world"}, 8, "hello wo", true},
		{"cut at a write", 5, -1, []string{"hello", " world"}, 5, "hello", true},
		{"subscription smaller than capture", 16, -1, []string{"hello world"}, 4, "hell", true},
		{"exactly the limit", 5, 5, []string{"hello"}, 5, "hello", false},
		{"empty", 5, 0, nil, 5, "", false},
		{"content-length announced more than was read", 16, 100, []string{"hello"}, 16, "hello", true},
		{"limit clamped to MaxBody", MaxBody + 10, -1, []string{strings.Repeat("x", MaxBody+5)}, MaxBody + 10, strings.Repeat("x", MaxBody), true},
		{"zero limit keeps nothing", 0, -1, []string{"hello"}, 16, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCapture(tc.limit, tc.declared)
			for _, w := range tc.writes {
				if n, err := c.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v; want all of it, nil", w, n, err)
				}
			}
			b, cut := c.Bytes(tc.n)
			if string(b) != tc.want || cut != tc.cut {
				t.Errorf("Bytes(%d) = %q, %t; want %q, %t", tc.n, b, cut, tc.want, tc.cut)
			}
			if limit := min(tc.limit, MaxBody); cap(c.buf) > limit {
				t.Errorf("capture grew to %d bytes, more than its limit %d", cap(c.buf), limit)
			}
		})
	}
}

// TestCaptureConcurrent writes from several goroutines while another
// reads (the upstream transport and the finishing request); run with
// -race.
func TestCaptureConcurrent(t *testing.T) {
	c := NewCapture(64, -1)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				_, _ = c.Write([]byte("abcdefgh"))
			}
		})
	}
	wg.Go(func() {
		for range 100 {
			if b, _ := c.Bytes(64); len(b) > 64 {
				t.Errorf("%d bytes", len(b))
			}
		}
	})
	wg.Wait()
	if b, cut := c.Bytes(64); len(b) != 64 || !cut || c.seen != 3200 {
		t.Errorf("kept %d, cut %t, seen %d; want 64, true, 3200", len(b), cut, c.seen)
	}
}

func TestEncodeBody(t *testing.T) {
	grpcFrame := []byte{0, 0, 0, 0, 5, 0x0a, 0x03, 'f', 'o', 'o'}
	for _, tc := range []struct {
		name     string
		in       []byte
		cut      bool
		want     string
		encoding string
	}{
		{"text", []byte("{\"a\": 1}\n"), false, "{\"a\": 1}\n", ""},
		{"unicode", []byte("héllo ✓"), false, "héllo ✓", ""},
		{"grpc frame", grpcFrame, false, base64.StdEncoding.EncodeToString(grpcFrame), EncodingBase64},
		{"invalid utf-8", []byte{0xff, 'a'}, false, "/2E=", EncodingBase64},
		{"character cut by the limit", []byte("ok ✓")[:5], true, "ok ", ""},
		{"incomplete character, not cut", []byte("ok ✓")[:5], false, base64.StdEncoding.EncodeToString([]byte("ok ✓")[:5]), EncodingBase64},
		{"empty", nil, false, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, enc := encodeBody(tc.in, tc.cut)
			if got != tc.want || enc != tc.encoding {
				t.Errorf("encodeBody(%q, %t) = %q, %q; want %q, %q", tc.in, tc.cut, got, enc, tc.want, tc.encoding)
			}
		})
	}
}

// TestBodyLimit checks what a request starting now captures: nothing
// without a subscription asking for bodies, else the largest limit among
// those it may match.
func TestBodyLimit(t *testing.T) {
	tp := New(4)
	if n := tp.BodyLimit(true, "GET", "reviews", "/"); n != 0 {
		t.Fatalf("no subscription: %d", n)
	}
	tp.Subscribe(Subscription{ID: "headers", Headers: true})
	if n := tp.BodyLimit(true, "GET", "reviews", "/"); n != 0 {
		t.Fatalf("a subscription without bodies: %d", n)
	}
	tp.Subscribe(Subscription{ID: "in", Body: 100, Match: Match{Direction: Inbound, PathPrefix: "/api", Method: "post"}})
	tp.Subscribe(Subscription{ID: "out", Body: 10, Match: Match{Direction: Outbound, Authority: "Reviews"}})
	tp.Subscribe(Subscription{ID: "huge", Body: 1 << 20, Match: Match{PathPrefix: "/huge"}})
	for _, tc := range []struct {
		inbound                 bool
		method, authority, path string
		want                    int
	}{
		{true, "POST", "x", "/api/1", 100},
		{true, "GET", "x", "/api/1", 0},
		{true, "POST", "x", "/other", 0},
		{false, "POST", "reviews", "/api/1", 10},
		{false, "POST", "catalog", "/api/1", 0},
		{false, "GET", "x", "/huge", MaxBody},
	} {
		if n := tp.BodyLimit(tc.inbound, tc.method, tc.authority, tc.path); n != tc.want {
			t.Errorf("BodyLimit(%t, %s, %s, %s) = %d, want %d", tc.inbound, tc.method, tc.authority, tc.path, n, tc.want)
		}
	}
	tp.Cancel("in")
	tp.Cancel("out")
	tp.Cancel("huge")
	if n := tp.BodyLimit(false, "GET", "x", "/huge"); n != 0 {
		t.Fatalf("after cancelling the body subscriptions: %d", n)
	}
}

// TestEventBodies checks that only a subscription that asked for bodies
// gets them in its events, each cut to its own limit.
func TestEventBodies(t *testing.T) {
	tp := New(4)
	tp.Subscribe(Subscription{ID: "plain"})
	tp.Subscribe(Subscription{ID: "small", Body: 4})
	tp.Subscribe(Subscription{ID: "big", Body: 64})
	r := inbound()
	r.RequestBody, r.ResponseBody = NewCapture(64, 5), NewCapture(64, -1)
	_, _ = r.RequestBody.Write([]byte("hello"))
	_, _ = r.ResponseBody.Write([]byte{0, 0, 0, 0, 1, 0xff})
	tp.Observe(r)
	got := map[string]*Event{}
	for range 3 {
		m := <-tp.Events()
		got[m.Sub] = m.Event
	}
	if e := got["plain"]; e.RequestBody != nil || e.ResponseBody != nil {
		t.Errorf("plain: bodies %v %v without asking", e.RequestBody, e.ResponseBody)
	}
	if e := got["small"]; e.RequestBody == nil || *e.RequestBody != "hell" || !e.RequestBodyTruncated || e.RequestBodyEncoding != "" ||
		e.ResponseBody == nil || *e.ResponseBody != "AAAAAA==" || e.ResponseBodyEncoding != EncodingBase64 || !e.ResponseBodyTruncated {
		t.Errorf("small: %+v", e)
	}
	if e := got["big"]; e.RequestBody == nil || *e.RequestBody != "hello" || e.RequestBodyTruncated ||
		e.ResponseBody == nil || !bytes.Equal(decode(t, *e.ResponseBody), []byte{0, 0, 0, 0, 1, 0xff}) || e.ResponseBodyTruncated {
		t.Errorf("big: %+v", e)
	}
}

func decode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
