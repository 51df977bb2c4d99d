package nats

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// parsed is a Frame with copied fields plus its payload, for comparison.
type parsed struct {
	Op                         Op
	Subject, Reply, Queue, SID string
	HeaderSize, Size, MaxMsgs  int
	Args, Payload, Line        string
}

// parseAll parses a whole stream, feeding it in chunks of the given size
// the way a connection would (appending unconsumed bytes to the next read).
func parseAll(p *Parser, stream []byte, chunk int) ([]parsed, error) {
	var out []parsed
	var buf []byte
	for off := 0; off < len(stream) || len(buf) > 0; {
		if off < len(stream) {
			end := min(off+chunk, len(stream))
			buf = append(buf, stream[off:end]...)
			off = end
		}
		progressed := false
		for len(buf) > 0 {
			n, f, err := p.Next(buf)
			if err != nil {
				return out, err
			}
			if n == 0 {
				break
			}
			progressed = true
			if f != nil {
				out = append(out, parsed{Op: f.Op, Subject: string(f.Subject), Reply: string(f.Reply), Queue: string(f.Queue),
					SID: string(f.SID), HeaderSize: f.HeaderSize, Size: f.Size, MaxMsgs: f.MaxMsgs, Args: string(f.Args), Line: string(f.Line)})
			} else {
				last := &out[len(out)-1]
				last.Payload += string(buf[:n])
			}
			buf = buf[n:]
		}
		if !progressed && off >= len(stream) {
			break
		}
	}
	return out, nil
}

func TestParserFrames(t *testing.T) {
	client := "CONNECT {\"verbose\":false}\r\nPING\r\nsub foo.* q 1\r\nSUB bar 2\r\nPUB foo.a 5\r\nhello\r\n" +
		"PUB foo.b _INBOX.x 0\r\n\r\nHPUB h 12 14\r\nNATS/1.0\r\n\r\nhi\r\nUNSUB 1 10\r\nUNSUB 2\r\nPONG\r\n"
	server := "INFO {\"server_id\":\"x\"}\r\n+OK\r\nMSG foo.a 1 5\r\nhello\r\nMSG foo.b 1 _INBOX.x 0\r\n\r\n" +
		"HMSG h 3 12 14\r\nNATS/1.0\r\n\r\nhi\r\n-ERR 'Unknown Protocol Operation'\r\nPING\r\n"
	tests := []struct {
		name   string
		dir    Direction
		stream string
		want   []parsed
	}{
		{name: "client", dir: ClientToServer, stream: client, want: []parsed{
			{Op: OpConnect, Args: `{"verbose":false}`},
			{Op: OpPing},
			{Op: OpSub, Subject: "foo.*", Queue: "q", SID: "1"},
			{Op: OpSub, Subject: "bar", SID: "2"},
			{Op: OpPub, Subject: "foo.a", Size: 5, Payload: "hello\r\n"},
			{Op: OpPub, Subject: "foo.b", Reply: "_INBOX.x", Payload: "\r\n"},
			{Op: OpHPub, Subject: "h", HeaderSize: 12, Size: 14, Payload: "NATS/1.0\r\n\r\nhi\r\n"},
			{Op: OpUnsub, SID: "1", MaxMsgs: 10},
			{Op: OpUnsub, SID: "2"},
			{Op: OpPong},
		}},
		{name: "server", dir: ServerToClient, stream: server, want: []parsed{
			{Op: OpInfo, Args: `{"server_id":"x"}`},
			{Op: OpOK},
			{Op: OpMsg, Subject: "foo.a", SID: "1", Size: 5, Payload: "hello\r\n"},
			{Op: OpMsg, Subject: "foo.b", SID: "1", Reply: "_INBOX.x", Payload: "\r\n"},
			{Op: OpHMsg, Subject: "h", SID: "3", HeaderSize: 12, Size: 14, Payload: "NATS/1.0\r\n\r\nhi\r\n"},
			{Op: OpErr, Args: "'Unknown Protocol Operation'"},
			{Op: OpPing},
		}},
	}
	for _, tc := range tests {
		for _, chunk := range []int{1, 3, 7, 1 << 20} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := parseAll(&Parser{Dir: tc.dir}, []byte(tc.stream), chunk)
				if err != nil {
					t.Fatalf("chunk %d: %v", chunk, err)
				}
				if diff := cmp.Diff(tc.want, got, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Line" }, cmp.Ignore())); diff != "" {
					t.Fatalf("chunk %d (-want +got):\n%s", chunk, diff)
				}
				// Re-serialising the frames gives the canonical stream back.
				var b []byte
				for _, f := range got {
					fr := Frame{Op: f.Op, Subject: []byte(f.Subject), Reply: []byte(f.Reply), Queue: []byte(f.Queue), SID: []byte(f.SID),
						HeaderSize: f.HeaderSize, Size: f.Size, MaxMsgs: f.MaxMsgs, Args: []byte(f.Args)}
					b = append(fr.AppendLine(b), f.Payload...)
				}
				if !strings.EqualFold(string(b), tc.stream) {
					t.Fatalf("re-serialised\n%q\nwant\n%q", b, tc.stream)
				}
			})
		}
	}
}

func TestParserErrors(t *testing.T) {
	long := "PUB " + strings.Repeat("a", DefaultMaxControlLine) + " 1\r\n"
	tests := []struct {
		name   string
		dir    Direction
		stream string
		reason string
	}{
		{name: "unknown op", stream: "HELLO\r\n", reason: "unknown_operation"},
		{name: "server op from client", stream: "MSG a 1 0\r\n\r\n", reason: "wrong_direction"},
		{name: "client op from server", dir: ServerToClient, stream: "PUB a 0\r\n\r\n", reason: "wrong_direction"},
		{name: "pub without size", stream: "PUB a\r\n", reason: "malformed"},
		{name: "pub negative size", stream: "PUB a -1\r\n", reason: "malformed"},
		{name: "pub too many args", stream: "PUB a b c 1\r\n", reason: "malformed"},
		{name: "hpub header larger than total", stream: "HPUB a 5 4\r\n", reason: "malformed"},
		{name: "sub without sid", stream: "SUB a\r\n", reason: "malformed"},
		{name: "unsub bad max", stream: "UNSUB 1 x\r\n", reason: "malformed"},
		{name: "ping with args", stream: "PING x\r\n", reason: "malformed"},
		{name: "long line", stream: long, reason: "control_line_too_long"},
		{name: "long line without end", stream: strings.Repeat("a", DefaultMaxControlLine+2), reason: "control_line_too_long"},
		{name: "payload over max", stream: "PUB a 1048577\r\n", reason: "payload_too_large"},
		{name: "payload longer than announced", stream: "PUB a 2\r\nabc\r\n", reason: "bad_payload_terminator"},
		{name: "payload without crlf", stream: "PUB a 2\r\nab\n\n", reason: "bad_payload_terminator"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &Parser{Dir: tc.dir}
			_, err := parseAll(p, []byte(tc.stream), 5)
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Reason != tc.reason {
				t.Fatalf("error %v, want reason %q", err, tc.reason)
			}
			// The parser stays failed.
			if _, _, err2 := p.Next([]byte("PING\r\n")); err2 != err {
				t.Fatalf("after failure: %v", err2)
			}
		})
	}
	// A custom payload limit.
	p := &Parser{MaxPayload: 10}
	if _, err := parseAll(p, []byte("PUB a 11\r\n"), 64); err == nil {
		t.Fatal("payload over MaxPayload accepted")
	}
}

func TestSubjects(t *testing.T) {
	tests := []struct {
		p, s            string
		subset, overlap bool
	}{
		{"foo.bar", "foo.bar", true, true},
		{"foo.*", "foo.bar", true, true},
		{"foo.*", "foo.bar.baz", false, false},
		{"foo.>", "foo.bar.baz", true, true},
		{"foo.>", "foo", false, false},
		{"foo.*", "foo.*", true, true},
		{"foo.*", "foo.>", false, true},
		{"foo.bar", "foo.*", false, true},
		{"foo.bar", ">", false, true},
		{">", "anything.at.all", true, true},
		{"a.*.c", "a.b.d", false, false},
		{"a.b", "a.b.c", false, false},
	}
	for _, tc := range tests {
		if got := Subset(tc.p, []byte(tc.s)); got != tc.subset {
			t.Errorf("Subset(%q, %q) = %v", tc.p, tc.s, got)
		}
		if got := Overlap(tc.p, []byte(tc.s)); got != tc.overlap {
			t.Errorf("Overlap(%q, %q) = %v", tc.p, tc.s, got)
		}
	}
	for _, bad := range []string{"", "a..b", "a.>.b", "a*", "a b", ".a"} {
		if ValidatePattern(bad) == nil {
			t.Errorf("ValidatePattern(%q) accepted", bad)
		}
	}
	for _, good := range []string{"a", "a.*", "a.>", ">", "*.b.*"} {
		if err := ValidatePattern(good); err != nil {
			t.Errorf("ValidatePattern(%q): %v", good, err)
		}
	}
}

func FuzzParser(f *testing.F) {
	f.Add(false, []byte("CONNECT {}\r\nSUB a.* 1\r\nPUB a.b 5\r\nhello\r\nHPUB a 12 14\r\nNATS/1.0\r\n\r\nhi\r\nUNSUB 1 2\r\nPING\r\n"))
	f.Add(true, []byte("INFO {}\r\nMSG a.b 1 r 5\r\nhello\r\nHMSG a 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n+OK\r\n-ERR 'x'\r\nPONG\r\n"))
	f.Add(false, []byte("pub a 1\r\nx\r\n"))
	f.Add(true, []byte("MSG a 1 99999999\r\n"))
	f.Fuzz(func(t *testing.T, server bool, data []byte) {
		dir := ClientToServer
		if server {
			dir = ServerToClient
		}
		// Arbitrary bytes never panic, whatever the chunking.
		got, err := parseAll(&Parser{Dir: dir, MaxPayload: 1 << 16}, data, 7)
		if err != nil {
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Reason == "" {
				t.Fatalf("error of the wrong kind: %v", err)
			}
		}
		// The frames parsed so far, re-serialised canonically, parse back
		// to the same frames and re-serialise to the same bytes.
		var canon []byte
		for _, f := range got {
			if f.Op.HasPayload() && len(f.Payload) != f.Size+2 {
				break // the stream ended inside this payload
			}
			fr := Frame{Op: f.Op, Subject: []byte(f.Subject), Reply: []byte(f.Reply), Queue: []byte(f.Queue), SID: []byte(f.SID),
				HeaderSize: f.HeaderSize, Size: f.Size, MaxMsgs: f.MaxMsgs, Args: []byte(f.Args)}
			canon = append(fr.AppendLine(canon), f.Payload...)
		}
		again, err := parseAll(&Parser{Dir: dir, MaxPayload: 1 << 16}, canon, 1<<20)
		if err != nil {
			t.Fatalf("canonical stream %q: %v", canon, err)
		}
		var canon2 []byte
		for _, f := range again {
			if !bytes.HasSuffix([]byte(f.Line), []byte("\r\n")) {
				t.Fatalf("canonical line without CRLF: %q", f.Line)
			}
			canon2 = append(canon2, f.Line...)
			canon2 = append(canon2, f.Payload...)
		}
		if !bytes.Equal(canon, canon2) {
			t.Fatalf("round trip:\n%q\n%q", canon, canon2)
		}
	})
}
