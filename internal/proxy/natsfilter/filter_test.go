package natsfilter

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/internal/messaging/nats"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
)

// tcpPair returns the two ends of a real loopback TCP connection.
func tcpPair(t testing.TB) (client, proxySide net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	proxySide, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); proxySide.Close() })
	client.SetDeadline(time.Now().Add(5 * time.Second))
	proxySide.SetDeadline(time.Now().Add(5 * time.Second))
	return client, proxySide
}

func newConn(t testing.TB, v map[string]any) (client net.Conn, w *conn, reg *metrics.Registry) {
	t.Helper()
	cfg, err := Parse(typed(t, v))
	if err != nil {
		t.Fatal(err)
	}
	reg = metrics.New()
	client, side := tcpPair(t)
	return client, New(cfg, reg.NATS(cfg.StatPrefix)).Wrap(side, nil).(*conn), reg
}

// readN reads exactly n bytes from r.
func readN(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatalf("read %d bytes: %v (got %q)", n, err, b)
	}
	return string(b)
}

// TestDeniedPublishErrorBetweenFrames: the -ERR for a denied PUB never
// lands inside a server frame that is half written to the client.
func TestDeniedPublishErrorBetweenFrames(t *testing.T) {
	client, w, _ := newConn(t, map[string]any{"stat_prefix": "t", "policies": []any{
		map[string]any{"action": "DENY", "operations": []any{"publish"}, "subjects": []any{"secret.>"}},
	}})
	// The server has written half a MSG (and half its control line before).
	for _, part := range []string{"INFO {}\r\nMS", "G a 1 5\r\nhel"} {
		if _, err := w.Write([]byte(part)); err != nil {
			t.Fatal(err)
		}
	}
	io.WriteString(client, "PUB secret.x 1\r\nx\r\nPING\r\n")
	fwd := readN(t, w, len("PING\r\n"))
	if fwd != "PING\r\n" {
		t.Fatalf("forwarded %q, want only the PING", fwd)
	}
	if _, err := w.Write([]byte("lo\r\nPONG\r\n")); err != nil {
		t.Fatal(err)
	}
	want := "INFO {}\r\nMSG a 1 5\r\nhello\r\n-ERR 'Permissions Violation for Publish to \"secret.x\"'\r\nPONG\r\n"
	if got := readN(t, client, len(want)); got != want {
		t.Fatalf("client got\n%q\nwant\n%q", got, want)
	}
}

// TestForwardsBytesUnchanged: allowed traffic crosses byte for byte, with
// control lines and payloads split across reads, and is counted.
func TestForwardsBytesUnchanged(t *testing.T) {
	client, w, reg := newConn(t, map[string]any{"stat_prefix": "t"})
	stream := "CONNECT {}\r\nSUB a.* 7\r\nPUB a.b r 5\r\nhello\r\nHPUB a.c 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
	go func() {
		for i := 0; i < len(stream); i += 3 {
			io.WriteString(client, stream[i:min(i+3, len(stream))])
		}
	}()
	if got := readN(t, w, len(stream)); got != stream {
		t.Fatalf("forwarded %q", got)
	}
	if _, err := w.Write([]byte("MSG a.b 7 5\r\nhello\r\n")); err != nil {
		t.Fatal(err)
	}
	readN(t, client, len("MSG a.b 7 5\r\nhello\r\n"))
	for _, c := range []struct {
		name, direction, subject string
		want                     float64
	}{
		{"trellis_nats_messages_total", "publish", "a.b", 1},
		{"trellis_nats_bytes_total", "publish", "a.b", 5},
		{"trellis_nats_messages_total", "publish", "a.c", 1},
		{"trellis_nats_bytes_total", "publish", "a.c", 14},
		{"trellis_nats_messages_total", "deliver", "a.*", 1},
		{"trellis_nats_bytes_total", "deliver", "a.*", 5},
	} {
		if got := counter(t, reg, c.name, "stat_prefix", "t", "direction", c.direction, "subject", c.subject); got != c.want {
			t.Errorf("%s{%s,%s} = %v, want %v", c.name, c.direction, c.subject, got, c.want)
		}
	}
}

// counter returns the value of the counter name with the given label
// pairs, or -1.
func counter(t *testing.T, reg *metrics.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Prom.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue metric
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

func TestTraceparentInjected(t *testing.T) {
	client, w, _ := newConn(t, map[string]any{"stat_prefix": "t", "inject_traceparent": true})
	if _, err := w.Write([]byte("INFO {\"headers\":true}\r\n")); err != nil {
		t.Fatal(err)
	}
	readN(t, client, len("INFO {\"headers\":true}\r\n"))
	io.WriteString(client, "CONNECT {\"headers\":true}\r\nPUB a 5\r\nhello\r\n")
	readN(t, w, len("CONNECT {\"headers\":true}\r\n"))
	out := make([]byte, 0, 256)
	buf := make([]byte, 7) // small reads: the synthesised line spans several
	for !bytes.HasSuffix(out, []byte("hello\r\n")) {
		n, err := w.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, buf[:n]...)
	}
	p := nats.Parser{}
	n, f, err := p.Next(out)
	if err != nil || f == nil || f.Op != nats.OpHPub || f.HeaderSize != traceHeaderLen || f.Size != traceHeaderLen+5 {
		t.Fatalf("%q: %+v %v", out, f, err)
	}
	hdr := string(out[n : n+traceHeaderLen])
	if !strings.HasPrefix(hdr, "NATS/1.0\r\ntraceparent: 00-") || !strings.HasSuffix(hdr, "-01\r\n\r\n") || string(out[n+traceHeaderLen:]) != "hello\r\n" {
		t.Fatalf("header block %q, rest %q", hdr, out[n+traceHeaderLen:])
	}
}

func TestNoTraceparentWithoutHeaderSupport(t *testing.T) {
	client, w, _ := newConn(t, map[string]any{"stat_prefix": "t", "inject_traceparent": true})
	w.Write([]byte("INFO {\"headers\":false}\r\n"))
	io.WriteString(client, "CONNECT {\"headers\":true}\r\nPUB a 5\r\nhello\r\n")
	want := "CONNECT {\"headers\":true}\r\nPUB a 5\r\nhello\r\n"
	if got := readN(t, w, len(want)); got != want {
		t.Fatalf("forwarded %q", got)
	}
}

// TestProtocolErrorClosesConnection: a bad client line ends the
// connection with nats-server's error, and the reason is counted.
func TestProtocolErrorClosesConnection(t *testing.T) {
	client, w, reg := newConn(t, map[string]any{"stat_prefix": "t", "max_frame_bytes": 10})
	io.WriteString(client, "PUB a 11\r\n")
	if _, err := w.Read(make([]byte, 64)); err == nil {
		t.Fatal("read after an oversized PUB succeeded")
	}
	got, _ := io.ReadAll(client)
	if string(got) != "-ERR 'Maximum Payload Violation'\r\n" {
		t.Fatalf("client got %q", got)
	}
	if v := counter(t, reg, "trellis_nats_protocol_errors_total", "stat_prefix", "t", "reason", "payload_too_large"); v != 1 {
		t.Fatalf("protocol error counter %v", v)
	}
}

// TestSubjectCardinalityBounded: past metrics.NATSMaxSubjects distinct
// subjects, publishes are counted under "_other".
func TestSubjectCardinalityBounded(t *testing.T) {
	reg := metrics.New()
	st := reg.NATS("t")
	for i := range metrics.NATSMaxSubjects + 50 {
		st.Subject(metrics.NATSPublish, []byte("s."+strconv.Itoa(i))).Add(1)
	}
	if v := counter(t, reg, "trellis_nats_messages_total", "subject", metrics.NATSOtherSubject); v != 50 {
		t.Fatalf("_other counted %v, want 50", v)
	}
	if v := counter(t, reg, "trellis_nats_messages_total", "subject", "s.999"); v != 1 {
		t.Fatalf("s.999 counted %v", v)
	}
	if v := counter(t, reg, "trellis_nats_messages_total", "subject", "s.1000"); v != -1 {
		t.Fatal("a subject past the cap got its own series")
	}
}

// loopConn is a net.Conn whose reads return the same frame forever.
type loopConn struct {
	net.Conn
	frame []byte
}

func (c *loopConn) Read(p []byte) (int, error) { return copy(p, c.frame), nil }
func (c *loopConn) RemoteAddr() net.Addr       { return &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 1} }

// BenchmarkFilterPub measures one 128-byte PUB through the filter's read
// path with a policy and per-subject metrics.
func BenchmarkFilterPub(b *testing.B) {
	cfg, err := Parse(typed(b, map[string]any{"stat_prefix": "b", "policies": []any{
		map[string]any{"action": "DENY", "operations": []any{"publish"}, "subjects": []any{"secret.>"}},
	}}))
	if err != nil {
		b.Fatal(err)
	}
	frame := []byte("PUB orders.eu.created 128\r\n" + strings.Repeat("x", 128) + "\r\n")
	c := New(cfg, metrics.New().NATS("b")).Wrap(&loopConn{frame: frame}, nil)
	buf := make([]byte, len(frame))
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		for got := 0; got < len(frame); {
			n, err := c.Read(buf)
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
	}
}

// BenchmarkFilterMsg measures one 128-byte MSG through the write path.
func BenchmarkFilterMsg(b *testing.B) {
	cfg, _ := Parse(typed(b, map[string]any{"stat_prefix": "b"}))
	c := New(cfg, metrics.New().NATS("b")).Wrap(discardConn{}, nil).(*conn)
	c.subs = map[string]*metrics.NATSSubject{"17": c.f.stats.Subject(metrics.NATSDeliver, []byte("orders.*"))}
	frame := []byte("MSG orders.eu 17 128\r\n" + strings.Repeat("x", 128) + "\r\n")
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(frame); err != nil {
			b.Fatal(err)
		}
	}
}

type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error) { return len(p), nil }

func TestLabel(t *testing.T) {
	for in, want := range map[string]string{
		"orders.eu": "orders.eu", "_INBOX.abc.def": "_INBOX.>", "_INBOX.abc.*": "_INBOX.>",
		"$JS.ACK.s.c.1.2.3.4.5": "$JS.ACK.>", "_INBOXES": "_INBOXES",
	} {
		if got := string(label([]byte(in))); got != want {
			t.Errorf("label(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestTraceparentFullBuffer: when the read buffer has no room to insert a
// header block in place, the rewritten line goes out after the bytes
// before it, and every message still arrives once, in order, traced.
func TestTraceparentFullBuffer(t *testing.T) {
	cfg, err := Parse(typed(t, map[string]any{"stat_prefix": "t", "inject_traceparent": true}))
	if err != nil {
		t.Fatal(err)
	}
	var in []byte
	in = append(in, "CONNECT {\"headers\":true}\r\n"...)
	const n = 3000 // 3000 × 15 bytes: more than the 32 KiB buffer
	for i := range n {
		in = append(in, "PUB a "...)
		in = append(in, "1\r\n"...)
		in = append(in, byte('0'+i%10), '\r', '\n')
	}
	mc := &memConn{in: in, step: len(in)}
	c := New(cfg, metrics.New().NATS("t")).Wrap(mc, nil)
	if _, err := c.Write([]byte("INFO {\"headers\":true}\r\n")); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	p := nats.Parser{}
	got := 0
	for len(out) > 0 {
		k, f, err := p.Next(out)
		if err != nil || k == 0 {
			t.Fatalf("after %d messages: %v (%q)", got, err, out[:min(len(out), 80)])
		}
		if f != nil && f.Op == nats.OpHPub {
			if f.HeaderSize != traceHeaderLen || f.Size != traceHeaderLen+1 {
				t.Fatalf("message %d: %+v", got, f)
			}
			if want := byte('0' + got%10); out[k+traceHeaderLen] != want {
				t.Fatalf("message %d carries %q, want %q", got, out[k+traceHeaderLen], want)
			}
			got++
		}
		out = out[k:]
	}
	if got != n {
		t.Fatalf("%d traced messages, want %d", got, n)
	}
}

// TestPanicEndsOnlyTheConnection: a bug in the filter (forced here by
// breaking its buffer) ends that connection with an error, not the proxy.
func TestPanicEndsOnlyTheConnection(t *testing.T) {
	client, w, reg := newConn(t, map[string]any{"stat_prefix": "t"})
	w.rb, w.w = nil, 6 // the next parse slices out of range
	io.WriteString(client, "PING\r\n")
	if _, err := w.Read(make([]byte, 16)); err != errInternal {
		t.Fatalf("Read: %v, want errInternal", err)
	}
	if v := counter(t, reg, "trellis_nats_protocol_errors_total", "reason", "internal_error"); v != 1 {
		t.Fatalf("internal_error counted %v", v)
	}
	// Closed: the client sees EOF or a reset, not its read deadline.
	if _, err := io.ReadAll(client); err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the connection stayed open")
	}
}
