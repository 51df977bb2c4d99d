package natsfilter

import (
	"bytes"
	"io"
	"net"
	"testing"

	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
)

// memConn is an in-memory net.Conn: reads come from in (in chunks of at
// most step bytes), writes go to out.
type memConn struct {
	net.Conn
	in     []byte
	step   int
	out    bytes.Buffer
	closed bool
}

func (c *memConn) Read(p []byte) (int, error) {
	if len(c.in) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.step)], c.in)
	c.in = c.in[n:]
	return n, nil
}
func (c *memConn) Write(p []byte) (int, error) {
	if c.closed {
		return 0, net.ErrClosed
	}
	return c.out.Write(p)
}
func (c *memConn) Close() error         { c.closed = true; return nil }
func (c *memConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

// FuzzConn: whatever the client and the server send, the filter does not
// panic, and without a policy it is transparent: what it forwards in each
// direction is a prefix of what it was given (all of it unless the stream
// was malformed).
func FuzzConn(f *testing.F) {
	f.Add([]byte("CONNECT {}\r\nSUB a.* 1\r\nPUB a.b 5\r\nhello\r\nPING\r\n"), []byte("INFO {}\r\nMSG a.b 1 5\r\nhello\r\nPONG\r\n"), uint8(3))
	f.Add([]byte("PUB secret.x 1\r\nx\r\nHPUB a 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"), []byte("MSG a 1 2\r\nhi\r\n-ERR 'x'\r\n"), uint8(1))
	f.Add([]byte("PUB a 2\r\nabc\r\n"), []byte("MSG a 1 99999999\r\n"), uint8(7))
	f.Fuzz(func(t *testing.T, client, server []byte, step uint8) {
		s := int(step%16) + 1
		for _, policy := range []bool{false, true} {
			v := map[string]any{"stat_prefix": "f", "max_frame_bytes": 4096}
			if policy {
				v["policies"] = []any{map[string]any{"action": "DENY", "operations": []any{"publish", "subscribe"}, "subjects": []any{"secret.>"}}}
				v["inject_traceparent"] = true
			}
			cfg, err := Parse(typed(t, v))
			if err != nil {
				t.Fatal(err)
			}
			mc := &memConn{in: client, step: s}
			c := New(cfg, metrics.New().NATS("f")).Wrap(mc, nil)
			var fwd []byte
			buf := make([]byte, s)
			var rerr error
			for rerr == nil {
				var n int
				n, rerr = c.Read(buf)
				fwd = append(fwd, buf[:n]...)
			}
			var werr error
			for off := 0; off < len(server) && werr == nil; off += s {
				_, werr = c.Write(server[off:min(off+s, len(server))])
			}
			if policy {
				continue
			}
			// Client bytes are held only while a control line is
			// incomplete: what is left is at most part of one line.
			if !bytes.HasPrefix(client, fwd) || rerr == io.EOF && bytes.IndexByte(client[len(fwd):], '\n') >= 0 {
				t.Fatalf("client → server forwarded %q of %q (%v)", fwd, client, rerr)
			}
			got := mc.out.Bytes()
			if rerr != io.EOF {
				// A protocol error: the client got one -ERR line and the
				// connection was closed before the server wrote.
				if !bytes.HasPrefix(got, []byte("-ERR '")) || bytes.Count(got, []byte("\n")) != 1 {
					t.Fatalf("after %v the client got %q", rerr, got)
				}
				continue
			}
			if !bytes.HasPrefix(server, got) || werr == nil && !bytes.Equal(got, server) {
				t.Fatalf("server → client passed %q of %q (%v)", got, server, werr)
			}
		}
	})
}
