package trace

import (
	"net/http"
	"strings"

	oteltrace "go.opentelemetry.io/otel/trace"
)

// Format is the propagation format a request's trace context arrived in.
// Outgoing requests always carry W3C trace context; B3 headers are written
// too when the incoming request used them, in the same form.
type Format uint8

// The propagation formats.
const (
	FormatNone     Format = iota // no (valid) incoming context
	FormatW3C                    // traceparent, tracestate (https://www.w3.org/TR/trace-context/)
	FormatB3Multi                // x-b3-traceid, x-b3-spanid, x-b3-parentspanid, x-b3-sampled, x-b3-flags
	FormatB3Single               // b3: {traceid}-{spanid}-{sampled}-{parentspanid}
)

// Canonical header keys (net/http and the proxy's HTTP/1 codec both
// canonicalise incoming keys).
const (
	hdrTraceparent  = "Traceparent"
	hdrTracestate   = "Tracestate"
	hdrB3           = "B3"
	hdrB3TraceID    = "X-B3-Traceid"
	hdrB3SpanID     = "X-B3-Spanid"
	hdrB3ParentID   = "X-B3-Parentspanid"
	hdrB3Sampled    = "X-B3-Sampled"
	hdrB3Flags      = "X-B3-Flags"
	hdrClientTrace  = "X-Client-Trace-Id"
	hdrForceTrace   = "X-Envoy-Force-Trace"
	maxTracestate   = 512 // W3C: vendors should propagate at least 512 characters
	traceparentSize = 55  // "00-" + 32 + "-" + 16 + "-" + 2
)

// Context is a trace context read from or written to request headers.
type Context struct {
	TraceID oteltrace.TraceID
	// SpanID is the sender's span: the parent of the span that receives
	// the context.
	SpanID oteltrace.SpanID
	// ParentID is the sender's parent span (B3's x-b3-parentspanid); it
	// is written to B3 headers only.
	ParentID oteltrace.SpanID
	// Sampled is the sender's sampling decision, meaningful when
	// SampledSet (always set for W3C; B3 may defer the decision).
	Sampled, SampledSet bool
	// State is the W3C tracestate, passed on verbatim.
	State string
	// Format is the form the context was read from.
	Format Format
	// B3 is the B3 form Inject writes besides W3C (FormatB3Multi,
	// FormatB3Single), or FormatNone: the form of the B3 headers the
	// request arrived with, even when a traceparent took precedence.
	B3 Format
	// short is set when a B3 trace id arrived as 16 hex digits; it is
	// written back in the same width.
	short bool
}

// HasIDs reports whether c carries a trace and span id.
func (c *Context) HasIDs() bool { return c.TraceID.IsValid() && c.SpanID.IsValid() }

// Extract reads the trace context of h: W3C traceparent first, then B3
// single-header, then B3 multi-header. An invalid traceparent is ignored
// (W3C: the receiver starts a new trace) and so is the tracestate with it.
// A B3 header carrying only a sampling decision yields a Context without
// ids (HasIDs false) and SampledSet.
func Extract(h http.Header) Context {
	var c Context
	switch {
	case len(h[hdrB3]) > 0:
		c.B3 = FormatB3Single
	case len(h[hdrB3TraceID]) > 0 || len(h[hdrB3Sampled]) > 0:
		c.B3 = FormatB3Multi
	}
	if v := h[hdrTraceparent]; len(v) == 1 && parseTraceparent(v[0], &c) {
		c.Format = FormatW3C
		if ts := h[hdrTracestate]; len(ts) > 0 {
			c.State = joinState(ts)
		}
		if c.B3 == FormatB3Multi && len(h[hdrB3TraceID]) == 1 && len(h[hdrB3TraceID][0]) == 16 ||
			c.B3 == FormatB3Single && len(h[hdrB3]) == 1 && strings.IndexByte(h[hdrB3][0], '-') == 16 {
			c.short = c.TraceID[0]|c.TraceID[1]|c.TraceID[2]|c.TraceID[3]|c.TraceID[4]|c.TraceID[5]|c.TraceID[6]|c.TraceID[7] == 0
		}
		return c
	}
	b3 := c.B3
	if v := h[hdrB3]; len(v) == 1 && parseB3Single(v[0], &c) {
		c.Format = FormatB3Single
		return c
	}
	c = Context{B3: b3}
	if parseB3Multi(h, &c) {
		c.Format = FormatB3Multi
		return c
	}
	return Context{B3: b3}
}

// joinState combines several tracestate header lines into one list.
func joinState(ts []string) string {
	s := ts[0]
	if len(ts) > 1 {
		s = strings.Join(ts, ",")
	}
	if len(s) > maxTracestate {
		return "" // W3C §3.3.1.5: may discard rather than truncate mid-member
	}
	return s
}

// parseTraceparent parses version 00 and, by the forward-compatibility
// rule, the version-00 prefix of any later version except ff.
func parseTraceparent(s string, c *Context) bool {
	if len(s) < traceparentSize || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return false
	}
	ver, ok := hexByte(s[0], s[1])
	if !ok || ver == 0xff || (ver == 0 && len(s) != traceparentSize) || (ver > 0 && len(s) > traceparentSize && s[55] != '-') {
		return false
	}
	if !decodeLowerHex(c.TraceID[:], s[3:35]) || !decodeLowerHex(c.SpanID[:], s[36:52]) {
		return false
	}
	flags, ok := hexByte(s[53], s[54])
	if !ok || !c.TraceID.IsValid() || !c.SpanID.IsValid() {
		return false
	}
	c.Sampled, c.SampledSet = flags&1 == 1, true
	return true
}

// parseB3Single parses "b3: {traceid}-{spanid}[-{sampled}[-{parentspanid}]]"
// or a lone sampling state ("0", "1", "d").
// https://github.com/openzipkin/b3-propagation#single-header
func parseB3Single(s string, c *Context) bool {
	if len(s) == 1 {
		return b3Sampling(s, c)
	}
	tid, rest, ok := strings.Cut(s, "-")
	if !ok || !parseB3TraceID(tid, c) {
		return false
	}
	sid, rest, more := strings.Cut(rest, "-")
	if !decodeHex(c.SpanID[:], sid) || !c.SpanID.IsValid() {
		return false
	}
	if more {
		st, parent, hasParent := strings.Cut(rest, "-")
		if len(st) != 1 || !b3Sampling(st, c) {
			return false
		}
		if hasParent && !decodeHex(c.ParentID[:], parent) {
			return false
		}
	}
	return true
}

// parseB3Multi parses the x-b3-* headers.
// https://github.com/openzipkin/b3-propagation#multiple-headers
func parseB3Multi(h http.Header, c *Context) bool {
	tid, sid := h[hdrB3TraceID], h[hdrB3SpanID]
	sampled, flags := h[hdrB3Sampled], h[hdrB3Flags]
	switch {
	case len(flags) == 1 && flags[0] == "1":
		c.Sampled, c.SampledSet = true, true // debug implies accept
	case len(sampled) == 1:
		switch sampled[0] {
		case "1", "true":
			c.Sampled, c.SampledSet = true, true
		case "0", "false":
			c.SampledSet = true
		default:
			return false
		}
	}
	if len(tid) == 0 && len(sid) == 0 {
		return c.SampledSet // a sampling decision alone
	}
	if len(tid) != 1 || len(sid) != 1 || !parseB3TraceID(tid[0], c) ||
		!decodeHex(c.SpanID[:], sid[0]) || !c.SpanID.IsValid() {
		return false
	}
	if p := h[hdrB3ParentID]; len(p) == 1 && !decodeHex(c.ParentID[:], p[0]) {
		return false
	}
	return true
}

func parseB3TraceID(s string, c *Context) bool {
	switch len(s) {
	case 32:
		if !decodeHex(c.TraceID[:], s) {
			return false
		}
	case 16:
		c.TraceID = oteltrace.TraceID{}
		c.short = true
		if !decodeHex(c.TraceID[8:], s) {
			return false
		}
	default:
		return false
	}
	return c.TraceID.IsValid()
}

func b3Sampling(s string, c *Context) bool {
	switch s {
	case "1", "d":
		c.Sampled, c.SampledSet = true, true
	case "0":
		c.Sampled, c.SampledSet = false, true
	default:
		return false
	}
	return true
}

// Inject writes c to h: traceparent (and tracestate, removed when empty)
// always, B3 headers in the form c.Format names. c.SpanID is the span the
// receiver's spans become children of.
func (c *Context) Inject(h http.Header) {
	var b [traceparentSize]byte
	copy(b[:], "00-")
	encodeHex(b[3:35], c.TraceID[:])
	b[35] = '-'
	encodeHex(b[36:52], c.SpanID[:])
	b[52], b[53], b[54] = '-', '0', '0'
	if c.Sampled {
		b[54] = '1'
	}
	h[hdrTraceparent] = []string{string(b[:])}
	if c.State != "" {
		h[hdrTracestate] = []string{c.State}
	} else {
		delete(h, hdrTracestate)
	}
	switch c.B3 {
	case FormatB3Multi:
		tid := c.TraceID[:]
		if c.short {
			tid = tid[8:]
		}
		h[hdrB3TraceID] = []string{hexString(tid)}
		h[hdrB3SpanID] = []string{hexString(c.SpanID[:])}
		if c.ParentID.IsValid() {
			h[hdrB3ParentID] = []string{hexString(c.ParentID[:])}
		} else {
			delete(h, hdrB3ParentID)
		}
		h[hdrB3Sampled] = sampledValue(c.Sampled)
	case FormatB3Single:
		h[hdrB3] = []string{c.b3Single()}
	}
}

var (
	val1 = []string{"1"}
	val0 = []string{"0"}
)

// sampledValue returns a shared read-only header value: header maps only
// ever replace or append to value slices, and appending to a full slice
// copies it.
func sampledValue(s bool) []string {
	if s {
		return val1
	}
	return val0
}

func (c *Context) b3Single() string {
	tid := c.TraceID[:]
	if c.short {
		tid = tid[8:]
	}
	n := 2*len(tid) + 1 + 16 + 2
	if c.ParentID.IsValid() {
		n += 17
	}
	b := make([]byte, 0, n)
	b = appendHex(b, tid)
	b = append(b, '-')
	b = appendHex(b, c.SpanID[:])
	if c.Sampled {
		b = append(b, "-1"...)
	} else {
		b = append(b, "-0"...)
	}
	if c.ParentID.IsValid() {
		b = append(b, '-')
		b = appendHex(b, c.ParentID[:])
	}
	return string(b)
}

const hexDigits = "0123456789abcdef"

func encodeHex(dst, src []byte) {
	for i, x := range src {
		dst[2*i], dst[2*i+1] = hexDigits[x>>4], hexDigits[x&0xf]
	}
}

func appendHex(b, src []byte) []byte {
	for _, x := range src {
		b = append(b, hexDigits[x>>4], hexDigits[x&0xf])
	}
	return b
}

func hexString(src []byte) string {
	var b [32]byte
	encodeHex(b[:2*len(src)], src)
	return string(b[:2*len(src)])
}

func unhex(c byte, upper bool) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case upper && 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func hexByte(hi, lo byte) (byte, bool) {
	h, ok1 := unhex(hi, false)
	l, ok2 := unhex(lo, false)
	return h<<4 | l, ok1 && ok2
}

// decodeLowerHex decodes exactly len(dst)*2 lower-case hex digits (W3C
// forbids upper case).
func decodeLowerHex(dst []byte, s string) bool { return decode(dst, s, false) }

// decodeHex is decodeLowerHex accepting upper case too (B3 senders vary).
func decodeHex(dst []byte, s string) bool { return decode(dst, s, true) }

func decode(dst []byte, s string, upper bool) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := range dst {
		h, ok1 := unhex(s[2*i], upper)
		l, ok2 := unhex(s[2*i+1], upper)
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = h<<4 | l
	}
	return true
}
