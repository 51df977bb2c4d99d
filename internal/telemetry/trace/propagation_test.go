package trace

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	tid   = "4bf92f3577b34da6a3ce929d0e0e4736"
	sid   = "00f067aa0ba902b7"
	psid  = "a1b2c3d4e5f60718"
	tid64 = "a3ce929d0e0e4736"
)

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// view is what a test compares of a Context.
type view struct {
	TraceID, SpanID, ParentID string
	Sampled, SampledSet       bool
	State                     string
	Format, B3                Format
	Short                     bool
}

func viewOf(c Context) view {
	v := view{Sampled: c.Sampled, SampledSet: c.SampledSet, State: c.State, Format: c.Format, B3: c.B3, Short: c.short}
	if c.TraceID.IsValid() {
		v.TraceID = c.TraceID.String()
	}
	if c.SpanID.IsValid() {
		v.SpanID = c.SpanID.String()
	}
	if c.ParentID.IsValid() {
		v.ParentID = c.ParentID.String()
	}
	return v
}

func TestExtract(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    http.Header
		want view
	}{
		{name: "w3c sampled", h: hdr("traceparent", "00-"+tid+"-"+sid+"-01", "tracestate", "a=1", "tracestate", "b=2"),
			want: view{TraceID: tid, SpanID: sid, Sampled: true, SampledSet: true, State: "a=1,b=2", Format: FormatW3C}},
		{name: "w3c not sampled", h: hdr("traceparent", "00-"+tid+"-"+sid+"-00"),
			want: view{TraceID: tid, SpanID: sid, SampledSet: true, Format: FormatW3C}},
		{name: "w3c future version with suffix", h: hdr("traceparent", "01-"+tid+"-"+sid+"-01-extra"),
			want: view{TraceID: tid, SpanID: sid, Sampled: true, SampledSet: true, Format: FormatW3C}},
		{name: "w3c version 00 with suffix is invalid", h: hdr("traceparent", "00-"+tid+"-"+sid+"-01-extra")},
		{name: "w3c version ff is invalid", h: hdr("traceparent", "ff-"+tid+"-"+sid+"-01")},
		{name: "w3c upper case is invalid", h: hdr("traceparent", "00-4BF92F3577B34DA6A3CE929D0E0E4736-"+sid+"-01")},
		{name: "w3c zero trace id is invalid", h: hdr("traceparent", "00-00000000000000000000000000000000-"+sid+"-01")},
		{name: "w3c zero span id is invalid", h: hdr("traceparent", "00-"+tid+"-0000000000000000-01")},
		{name: "w3c invalid falls back to b3", h: hdr("traceparent", "garbage", "b3", tid+"-"+sid+"-1"),
			want: view{B3: FormatB3Single, TraceID: tid, SpanID: sid, Sampled: true, SampledSet: true, Format: FormatB3Single}},
		{name: "w3c wins over b3", h: hdr("traceparent", "00-"+tid+"-"+sid+"-00", "x-b3-traceid", tid64, "x-b3-spanid", psid),
			want: view{B3: FormatB3Multi, TraceID: tid, SpanID: sid, SampledSet: true, Format: FormatW3C}},
		{name: "w3c with a short b3 trace id keeps it short", h: hdr("traceparent", "00-0000000000000000"+tid64+"-"+sid+"-01", "x-b3-traceid", tid64),
			want: view{B3: FormatB3Multi, TraceID: "0000000000000000" + tid64, SpanID: sid, Sampled: true, SampledSet: true, Format: FormatW3C, Short: true}},
		{name: "b3 single full", h: hdr("b3", tid+"-"+sid+"-0-"+psid),
			want: view{B3: FormatB3Single, TraceID: tid, SpanID: sid, ParentID: psid, SampledSet: true, Format: FormatB3Single}},
		{name: "b3 single debug", h: hdr("b3", tid+"-"+sid+"-d"),
			want: view{B3: FormatB3Single, TraceID: tid, SpanID: sid, Sampled: true, SampledSet: true, Format: FormatB3Single}},
		{name: "b3 single deferred", h: hdr("b3", tid64+"-"+sid),
			want: view{B3: FormatB3Single, TraceID: "0000000000000000" + tid64, SpanID: sid, Format: FormatB3Single, Short: true}},
		{name: "b3 single deny only", h: hdr("b3", "0"), want: view{B3: FormatB3Single, SampledSet: true, Format: FormatB3Single}},
		{name: "b3 single bad sampling", h: hdr("b3", tid+"-"+sid+"-x"), want: view{B3: FormatB3Single}},
		{name: "b3 single short span id", h: hdr("b3", tid+"-abc-1"), want: view{B3: FormatB3Single}},
		{name: "b3 multi", h: hdr("X-B3-TraceId", tid, "X-B3-SpanId", sid, "X-B3-ParentSpanId", psid, "X-B3-Sampled", "1"),
			want: view{B3: FormatB3Multi, TraceID: tid, SpanID: sid, ParentID: psid, Sampled: true, SampledSet: true, Format: FormatB3Multi}},
		{name: "b3 multi upper case ids", h: hdr("X-B3-TraceId", "A3CE929D0E0E4736", "X-B3-SpanId", "00F067AA0BA902B7"),
			want: view{B3: FormatB3Multi, TraceID: "0000000000000000" + tid64, SpanID: sid, Format: FormatB3Multi, Short: true}},
		{name: "b3 multi legacy true", h: hdr("X-B3-TraceId", tid, "X-B3-SpanId", sid, "X-B3-Sampled", "true"),
			want: view{B3: FormatB3Multi, TraceID: tid, SpanID: sid, Sampled: true, SampledSet: true, Format: FormatB3Multi}},
		{name: "b3 multi debug flag", h: hdr("X-B3-TraceId", tid, "X-B3-SpanId", sid, "X-B3-Sampled", "0", "X-B3-Flags", "1"),
			want: view{B3: FormatB3Multi, TraceID: tid, SpanID: sid, Sampled: true, SampledSet: true, Format: FormatB3Multi}},
		{name: "b3 multi sampled only", h: hdr("X-B3-Sampled", "0"), want: view{B3: FormatB3Multi, SampledSet: true, Format: FormatB3Multi}},
		{name: "b3 multi missing span id", h: hdr("X-B3-TraceId", tid), want: view{B3: FormatB3Multi}},
		{name: "b3 multi bad sampled", h: hdr("X-B3-TraceId", tid, "X-B3-SpanId", sid, "X-B3-Sampled", "yes"), want: view{B3: FormatB3Multi}},
		{name: "none", h: hdr("x-request-id", "abc")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, viewOf(Extract(tc.h))); diff != "" {
				t.Errorf("Extract (-want +got):\n%s", diff)
			}
		})
	}
}

func TestInject(t *testing.T) {
	var c Context
	c.TraceID, c.SpanID, c.ParentID = mustTrace(tid), mustSpan(sid), mustSpan(psid)
	for _, tc := range []struct {
		name    string
		format  Format
		sampled bool
		short   bool
		state   string
		in      http.Header
		want    http.Header
	}{
		{name: "w3c", format: FormatW3C, sampled: true, state: "a=1", in: hdr("tracestate", "old=1"),
			want: hdr("traceparent", "00-"+tid+"-"+sid+"-01", "tracestate", "a=1")},
		{name: "w3c drops stale tracestate", format: FormatNone, in: hdr("tracestate", "old=1"),
			want: hdr("traceparent", "00-"+tid+"-"+sid+"-00")},
		{name: "b3 multi", format: FormatB3Multi, sampled: true,
			want: hdr("traceparent", "00-"+tid+"-"+sid+"-01", "x-b3-traceid", tid, "x-b3-spanid", sid, "x-b3-parentspanid", psid, "x-b3-sampled", "1")},
		{name: "b3 multi short", format: FormatB3Multi, short: true,
			want: hdr("traceparent", "00-"+tid+"-"+sid+"-00", "x-b3-traceid", tid64, "x-b3-spanid", sid, "x-b3-parentspanid", psid, "x-b3-sampled", "0")},
		{name: "b3 single", format: FormatB3Single, sampled: true,
			want: hdr("traceparent", "00-"+tid+"-"+sid+"-01", "b3", tid+"-"+sid+"-1-"+psid)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := c
			c.B3, c.Sampled, c.short, c.State = tc.format, tc.sampled, tc.short, tc.state
			h := tc.in
			if h == nil {
				h = http.Header{}
			}
			c.Inject(h)
			if diff := cmp.Diff(tc.want, h); diff != "" {
				t.Errorf("Inject (-want +got):\n%s", diff)
			}
		})
	}
}

func mustTrace(s string) (id [16]byte) {
	if !decodeLowerHex(id[:], s) {
		panic(s)
	}
	return id
}

func mustSpan(s string) (id [8]byte) {
	if !decodeLowerHex(id[:], s) {
		panic(s)
	}
	return id
}

// FuzzExtract checks that whatever Extract accepts, Inject writes back in
// a form Extract reads to the same context.
func FuzzExtract(f *testing.F) {
	f.Add("00-"+tid+"-"+sid+"-01", "", "", "", "")
	f.Add("", tid+"-"+sid+"-1-"+psid, "", "", "")
	f.Add("", "", tid64, sid, "1")
	f.Add("01-"+tid+"-"+sid+"-03-xyz", "0", "", "", "")
	f.Fuzz(func(t *testing.T, tp, b3, b3tid, b3sid, b3s string) {
		h := http.Header{}
		for k, v := range map[string]string{"Traceparent": tp, "B3": b3, "X-B3-Traceid": b3tid, "X-B3-Spanid": b3sid, "X-B3-Sampled": b3s} {
			if v != "" {
				h[k] = []string{v}
			}
		}
		c := Extract(h)
		if !c.HasIDs() {
			return
		}
		out := http.Header{}
		c.Inject(out)
		back := Extract(out)
		if back.TraceID != c.TraceID || back.SpanID != c.SpanID || back.Sampled != c.Sampled {
			t.Fatalf("round trip: %+v -> %v -> %+v", c, out, back)
		}
	})
}

func BenchmarkExtractInject(b *testing.B) {
	in := hdr("traceparent", "00-"+tid+"-"+sid+"-01")
	out := http.Header{}
	b.ReportAllocs()
	for b.Loop() {
		c := Extract(in)
		c.Inject(out)
	}
}
