package tap

import (
	"encoding/base64"
	"strings"
	"sync"
	"unicode/utf8"
)

// MaxBody is the most bytes of each body a subscription may capture
// (Subscription.Body).
const MaxBody = 4096

// EncodingBase64 is the value of an Event's RequestBodyEncoding and
// ResponseBodyEncoding for a body that is not printable UTF-8 text.
const EncodingBase64 = "base64"

// Capture keeps the first bytes of a body as it streams past: a bounded
// copy that never holds more than its limit and never fails, so teeing
// a body into it cannot delay or change the body. The connection manager
// creates one per body only when Tap.BodyLimit asks for it. Write may be
// called from an upstream transport's goroutine while Observe reads, so
// a Capture is safe for concurrent use. The zero value captures nothing;
// set the limit with Reset.
type Capture struct {
	mu    sync.Mutex
	buf   []byte
	limit int
	seen  int64 // bytes written, kept or not
	// declared is the length the body announced (Content-Length), or -1.
	declared int64
}

// NewCapture returns a Capture of at most limit bytes (clamped to
// 0..MaxBody) of a body that announced declared bytes (-1: unknown).
func NewCapture(limit int, declared int64) *Capture {
	c := &Capture{}
	c.Reset(limit, declared)
	return c
}

// Reset empties c and sets its limit (clamped to 0..MaxBody) and the
// body's announced length (-1: unknown).
func (c *Capture) Reset(limit int, declared int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.limit, c.seen, c.declared = min(max(limit, 0), MaxBody), 0, declared
	c.buf = c.buf[:0]
}

// Write keeps what fits of p under the limit and counts the rest. It
// always returns len(p), nil.
func (c *Capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen += int64(len(p))
	if room := c.limit - len(c.buf); room > 0 && len(p) > 0 {
		k := min(room, len(p))
		if need := len(c.buf) + k; need > cap(c.buf) {
			// Grow by hand: append could round the capacity past the
			// limit.
			nb := make([]byte, len(c.buf), min(c.limit, max(need, 2*cap(c.buf), 256)))
			copy(nb, c.buf)
			c.buf = nb
		}
		c.buf = append(c.buf, p[:k]...)
	}
	return len(p), nil
}

// Bytes returns a copy of at most n of the kept bytes, and whether the
// body went on past them (more bytes passed, or its Content-Length
// announced more).
func (c *Capture) Bytes(n int) (b []byte, truncated bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := min(max(n, 0), len(c.buf))
	return append([]byte(nil), c.buf[:k]...), c.seen > int64(k) || c.declared > int64(k)
}

// encoded returns at most n of the kept bytes rendered by encodeBody,
// and whether the body went on past them.
func (c *Capture) encoded(n int) (body, encoding string, truncated bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := min(max(n, 0), len(c.buf))
	truncated = c.seen > int64(k) || c.declared > int64(k)
	body, encoding = encodeBody(c.buf[:k], truncated)
	return body, encoding, truncated
}

// encodeBody renders b for an Event: printable UTF-8 text as is
// (a multi-byte character cut by the limit is left out), anything else
// base64 with encoding EncodingBase64.
func encodeBody(b []byte, truncated bool) (body, encoding string) {
	if printable(b) {
		return string(b), ""
	}
	if truncated {
		// The limit may have cut the last character in the middle.
		for k := 1; k <= utf8.UTFMax-1 && k <= len(b); k++ {
			if !utf8.FullRune(b[len(b)-k:]) && printable(b[:len(b)-k]) {
				return string(b[:len(b)-k]), ""
			}
		}
	}
	return base64.StdEncoding.EncodeToString(b), EncodingBase64
}

// printable reports whether b is valid UTF-8 without control characters
// other than tab, line feed and carriage return.
func printable(b []byte) bool {
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 {
			return false
		}
		if (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return false
		}
		b = b[n:]
	}
	return true
}

// bodies fills e's body fields from r's captures, cut to s's limit.
func (s *sub) bodies(e *Event, r *Request) {
	if c := r.RequestBody; c != nil {
		body, enc, cut := c.encoded(s.Body)
		e.RequestBody, e.RequestBodyEncoding, e.RequestBodyTruncated = &body, enc, cut
	}
	if c := r.ResponseBody; c != nil {
		body, enc, cut := c.encoded(s.Body)
		e.ResponseBody, e.ResponseBodyEncoding, e.ResponseBodyTruncated = &body, enc, cut
	}
}

// mayMatch reports whether a request may match s from what is known when
// it starts: its direction, method, authority and path.
func (s *sub) mayMatch(inbound bool, method, authority, path string) bool {
	m := &s.Match
	switch m.Direction {
	case Inbound:
		if !inbound {
			return false
		}
	case Outbound:
		if inbound {
			return false
		}
	}
	if m.PathPrefix != "" && !strings.HasPrefix(path, m.PathPrefix) {
		return false
	}
	if s.method != "" && !strings.EqualFold(method, s.method) {
		return false
	}
	if m.Authority != "" && !strings.EqualFold(authority, m.Authority) {
		return false
	}
	return true
}

// BodyLimit returns how many bytes of each body a request starting now
// should keep (0: none): the largest Body of the open subscriptions that
// ask for bodies and that the request may match. With no such
// subscription it costs one atomic load; the connection manager calls it
// once per request.
func (t *Tap) BodyLimit(inbound bool, method, authority, path string) int {
	set := t.subs.Load()
	if set == nil || len(set.body) == 0 {
		return 0
	}
	n := 0
	for _, s := range set.body {
		if s.Body > n && s.mayMatch(inbound, method, authority, path) {
			n = s.Body
		}
	}
	return n
}
