package nats

import (
	"bytes"
	"strconv"
)

// Defaults of a Parser's zero-valued limits.
const (
	// DefaultMaxControlLine is nats-server's max_control_line (4 KiB).
	DefaultMaxControlLine = 4096
	// DefaultMaxPayload is nats-server's max_payload (1 MiB).
	DefaultMaxPayload = 1 << 20
)

// Direction says which side of a connection wrote a stream.
type Direction uint8

// Directions.
const (
	ClientToServer Direction = iota // CONNECT, PUB, HPUB, SUB, UNSUB, PING, PONG
	ServerToClient                  // INFO, MSG, HMSG, +OK, -ERR, PING, PONG
)

func (d Direction) String() string {
	if d == ServerToClient {
		return "server_to_client"
	}
	return "client_to_server"
}

// Op is a protocol operation.
type Op uint8

// Operations.
const (
	OpUnknown Op = iota
	OpInfo
	OpConnect
	OpPub
	OpHPub
	OpSub
	OpUnsub
	OpMsg
	OpHMsg
	OpPing
	OpPong
	OpOK
	OpErr
)

var opNames = [...]string{"", "INFO", "CONNECT", "PUB", "HPUB", "SUB", "UNSUB", "MSG", "HMSG", "PING", "PONG", "+OK", "-ERR"}

func (o Op) String() string {
	if int(o) < len(opNames) && o != OpUnknown {
		return opNames[o]
	}
	return "UNKNOWN"
}

// HasPayload reports whether a payload follows the operation's control line.
func (o Op) HasPayload() bool { return o == OpPub || o == OpHPub || o == OpMsg || o == OpHMsg }

// allowed reports whether d may carry o.
func (o Op) allowed(d Direction) bool {
	switch o {
	case OpPing, OpPong:
		return true
	case OpConnect, OpPub, OpHPub, OpSub, OpUnsub:
		return d == ClientToServer
	case OpInfo, OpMsg, OpHMsg, OpOK, OpErr:
		return d == ServerToClient
	}
	return false
}

// Frame is one parsed control line. Its byte slices alias the buffer given
// to Parser.Next and are valid until that buffer changes.
type Frame struct {
	Op Op
	// Line is the control line as received, with its line ending.
	Line []byte
	// Subject is the subject of PUB, HPUB, SUB, MSG and HMSG.
	Subject []byte
	// Reply is the optional reply subject of PUB, HPUB, MSG and HMSG.
	Reply []byte
	// Queue is the optional queue group of SUB.
	Queue []byte
	// SID is the subscription id of SUB, UNSUB, MSG and HMSG.
	SID []byte
	// HeaderSize is the size of the header block of HPUB and HMSG.
	HeaderSize int
	// Size is the number of payload bytes that follow the line (headers
	// included), not counting the CRLF after them.
	Size int
	// MaxMsgs is UNSUB's optional max_msgs; 0 when absent.
	MaxMsgs int
	// Args is the JSON of INFO and CONNECT and the text of -ERR, as sent.
	Args []byte
}

// ProtocolError is a stream that cannot be parsed. Reason is one of a
// small fixed set (a metric label): control_line_too_long,
// payload_too_large, unknown_operation, wrong_direction, malformed,
// bad_payload_terminator.
type ProtocolError struct {
	Reason string
	Detail string
}

func (e *ProtocolError) Error() string {
	return "nats: " + e.Reason + ": " + e.Detail
}

// Parser splits one direction of a NATS connection into frames. The zero
// value is a client → server parser with the default limits.
type Parser struct {
	// Dir is the direction parsed: operations of the other direction are
	// protocol errors.
	Dir Direction
	// MaxControlLine bounds a control line's length without its line
	// ending, in bytes. Zero means DefaultMaxControlLine.
	MaxControlLine int
	// MaxPayload bounds a message's size (headers and payload) in bytes.
	// Zero means DefaultMaxPayload.
	MaxPayload int

	frame     Frame
	remaining int // payload bytes plus the CRLF terminator still to come
	failed    error
}

// InPayload reports whether the parser is inside a message payload (or its
// terminator), that is, not at a frame boundary.
func (p *Parser) InPayload() bool { return p.remaining > 0 }

// Remaining is the number of payload bytes (including the CRLF terminator)
// still expected before the next control line.
func (p *Parser) Remaining() int { return p.remaining }

// Next consumes the start of b:
//   - inside a payload it consumes up to the rest of the payload and its
//     terminator, returning n > 0 and a nil Frame;
//   - at a control line it returns the line's length and the parsed Frame
//     when b holds the whole line, and n == 0, a nil Frame and a nil error
//     when b holds only its start (call again with more bytes appended).
//
// After an error the stream is unusable and every later call returns the
// same error. The Frame is reused by the next call.
func (p *Parser) Next(b []byte) (n int, f *Frame, err error) {
	if p.failed != nil {
		return 0, nil, p.failed
	}
	if len(b) == 0 {
		return 0, nil, nil
	}
	if p.remaining > 0 {
		return p.payload(b)
	}
	maxLine := p.MaxControlLine
	if maxLine <= 0 {
		maxLine = DefaultMaxControlLine
	}
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		if len(b) > maxLine+1 { // +1: a '\r' may still precede the '\n'
			return 0, nil, p.fail("control_line_too_long", "no line end within "+strconv.Itoa(maxLine)+" bytes")
		}
		return 0, nil, nil
	}
	line := b[:i]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	if len(line) > maxLine {
		return 0, nil, p.fail("control_line_too_long", strconv.Itoa(len(line))+" bytes > "+strconv.Itoa(maxLine))
	}
	p.frame = Frame{Line: b[:i+1]}
	if err := p.parseLine(line); err != nil {
		return 0, nil, err
	}
	if p.frame.Op.HasPayload() {
		p.remaining = p.frame.Size + 2
	}
	return i + 1, &p.frame, nil
}

func (p *Parser) payload(b []byte) (int, *Frame, error) {
	m := min(p.remaining, len(b))
	// The terminator's bytes are the last two of the remaining span.
	if j := p.remaining - 2; j >= 0 && j < m && b[j] != '\r' {
		return 0, nil, p.fail("bad_payload_terminator", "payload not followed by CRLF")
	}
	if j := p.remaining - 1; j < m && b[j] != '\n' {
		return 0, nil, p.fail("bad_payload_terminator", "payload not followed by CRLF")
	}
	p.remaining -= m
	return m, nil, nil
}

func (p *Parser) fail(reason, detail string) error {
	p.failed = &ProtocolError{Reason: reason, Detail: detail}
	return p.failed
}

// maxArgs is the most arguments an operation takes (HMSG: 5).
const maxArgs = 5

func (p *Parser) parseLine(line []byte) error {
	f := &p.frame
	op, rest := cut(line)
	f.Op = lookupOp(op)
	if f.Op == OpUnknown {
		return p.fail("unknown_operation", "operation "+strconv.Quote(snip(op)))
	}
	if !f.Op.allowed(p.Dir) {
		return p.fail("wrong_direction", f.Op.String()+" sent "+p.Dir.String())
	}
	switch f.Op {
	case OpInfo, OpConnect, OpErr:
		f.Args = trimSpace(rest)
		return nil
	case OpPing, OpPong, OpOK:
		if len(trimSpace(rest)) != 0 {
			return p.fail("malformed", f.Op.String()+" takes no arguments")
		}
		return nil
	}
	var args [maxArgs][]byte
	n := 0
	for {
		var a []byte
		a, rest = cut(rest)
		if len(a) == 0 {
			break
		}
		if n == maxArgs {
			return p.fail("malformed", f.Op.String()+": too many arguments")
		}
		args[n] = a
		n++
	}
	bad := func() error { return p.fail("malformed", f.Op.String()+": wrong arguments") }
	var ok bool
	switch f.Op {
	case OpPub: // PUB <subject> [reply-to] <#bytes>
		if n != 2 && n != 3 {
			return bad()
		}
		f.Subject, f.Reply = args[0], args[1]
		if n == 2 {
			f.Reply = nil
		}
		if f.Size, ok = atoi(args[n-1]); !ok {
			return bad()
		}
	case OpHPub: // HPUB <subject> [reply-to] <#header bytes> <#total bytes>
		if n != 3 && n != 4 {
			return bad()
		}
		f.Subject = args[0]
		if n == 4 {
			f.Reply = args[1]
		}
		if f.HeaderSize, ok = atoi(args[n-2]); !ok {
			return bad()
		}
		if f.Size, ok = atoi(args[n-1]); !ok || f.HeaderSize > f.Size {
			return bad()
		}
	case OpMsg: // MSG <subject> <sid> [reply-to] <#bytes>
		if n != 3 && n != 4 {
			return bad()
		}
		f.Subject, f.SID = args[0], args[1]
		if n == 4 {
			f.Reply = args[2]
		}
		if f.Size, ok = atoi(args[n-1]); !ok {
			return bad()
		}
	case OpHMsg: // HMSG <subject> <sid> [reply-to] <#header bytes> <#total bytes>
		if n != 4 && n != 5 {
			return bad()
		}
		f.Subject, f.SID = args[0], args[1]
		if n == 5 {
			f.Reply = args[2]
		}
		if f.HeaderSize, ok = atoi(args[n-2]); !ok {
			return bad()
		}
		if f.Size, ok = atoi(args[n-1]); !ok || f.HeaderSize > f.Size {
			return bad()
		}
	case OpSub: // SUB <subject> [queue group] <sid>
		if n != 2 && n != 3 {
			return bad()
		}
		f.Subject, f.SID = args[0], args[n-1]
		if n == 3 {
			f.Queue = args[1]
		}
	case OpUnsub: // UNSUB <sid> [max_msgs]
		if n != 1 && n != 2 {
			return bad()
		}
		f.SID = args[0]
		if n == 2 {
			if f.MaxMsgs, ok = atoi(args[1]); !ok {
				return bad()
			}
		}
	}
	maxPayload := p.MaxPayload
	if maxPayload <= 0 {
		maxPayload = DefaultMaxPayload
	}
	if f.Op.HasPayload() && f.Size > maxPayload {
		return p.fail("payload_too_large", f.Op.String()+" of "+strconv.Itoa(f.Size)+" bytes > "+strconv.Itoa(maxPayload))
	}
	return nil
}

func lookupOp(b []byte) Op {
	switch len(b) {
	case 3:
		switch {
		case eqFold(b, "PUB"):
			return OpPub
		case eqFold(b, "SUB"):
			return OpSub
		case eqFold(b, "MSG"):
			return OpMsg
		case eqFold(b, "+OK"):
			return OpOK
		}
	case 4:
		switch {
		case eqFold(b, "HPUB"):
			return OpHPub
		case eqFold(b, "HMSG"):
			return OpHMsg
		case eqFold(b, "PING"):
			return OpPing
		case eqFold(b, "PONG"):
			return OpPong
		case eqFold(b, "INFO"):
			return OpInfo
		case eqFold(b, "-ERR"):
			return OpErr
		}
	case 5:
		if eqFold(b, "UNSUB") {
			return OpUnsub
		}
	case 7:
		if eqFold(b, "CONNECT") {
			return OpConnect
		}
	}
	return OpUnknown
}

// eqFold compares b with upper-case ASCII s, ignoring b's case.
func eqFold(b []byte, s string) bool {
	for i := range len(s) {
		c := b[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

// cut returns the first space-separated token of b and what follows it.
func cut(b []byte) (tok, rest []byte) {
	i := 0
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	j := i
	for j < len(b) && !isSpace(b[j]) {
		j++
	}
	return b[i:j], b[j:]
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// atoi parses a non-negative decimal of at most 9 digits.
func atoi(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func snip(b []byte) string {
	if len(b) > 16 {
		b = b[:16]
	}
	return string(b)
}

// AppendLine appends the canonical control line of f (upper-case operation,
// single spaces, CRLF) to dst.
func (f *Frame) AppendLine(dst []byte) []byte {
	dst = append(dst, f.Op.String()...)
	sp := func(b []byte) {
		if len(b) > 0 {
			dst = append(dst, ' ')
			dst = append(dst, b...)
		}
	}
	num := func(n int) {
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, int64(n), 10)
	}
	switch f.Op {
	case OpInfo, OpConnect, OpErr:
		sp(f.Args)
	case OpPub:
		sp(f.Subject)
		sp(f.Reply)
		num(f.Size)
	case OpHPub:
		sp(f.Subject)
		sp(f.Reply)
		num(f.HeaderSize)
		num(f.Size)
	case OpMsg:
		sp(f.Subject)
		sp(f.SID)
		sp(f.Reply)
		num(f.Size)
	case OpHMsg:
		sp(f.Subject)
		sp(f.SID)
		sp(f.Reply)
		num(f.HeaderSize)
		num(f.Size)
	case OpSub:
		sp(f.Subject)
		sp(f.Queue)
		sp(f.SID)
	case OpUnsub:
		sp(f.SID)
		if f.MaxMsgs > 0 {
			num(f.MaxMsgs)
		}
	}
	return append(dst, '\r', '\n')
}
