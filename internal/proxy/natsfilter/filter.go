package natsfilter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"sync"

	"github.com/trellis-mesh/trellis/internal/messaging/nats"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
)

// serverMaxControlLine bounds server → client control lines. INFO lists
// cluster URLs and grows past the client limit; nats-server allows routes
// and leaf nodes 16 times max_control_line, which this matches.
const serverMaxControlLine = 16 * nats.DefaultMaxControlLine

// readBufferSize is the client → server buffer of each connection; it must
// hold a whole control line.
const readBufferSize = 32 << 10

// Filter is one configured nats network filter. It is immutable and shared
// by the connections of its filter chain.
type Filter struct {
	cfg   *Config
	stats *metrics.NATS
	other *metrics.NATSSubject // deliveries on unknown subscriptions
}

// New returns a Filter counting into stats (which may be nil).
func New(cfg *Config, stats *metrics.NATS) *Filter {
	return &Filter{cfg: cfg, stats: stats, other: stats.Subject(metrics.NATSDeliver, []byte(metrics.NATSOtherSubject))}
}

// StatPrefix is the filter's stat_prefix.
func (f *Filter) StatPrefix() string { return f.cfg.StatPrefix }

// Wrap returns c as seen by the next network filter (tcp_proxy): reading
// from it yields the client's byte stream minus denied operations (and with
// traceparent headers added when configured); writing to it passes the
// server's stream to the client, observed, with the filter's -ERR replies
// put in between whole frames. Nothing is read before the next filter
// reads, so a server-first protocol is never delayed. Protocol errors are
// logged to log and close c.
func (f *Filter) Wrap(c net.Conn, log *slog.Logger) net.Conn {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &conn{
		Conn: c, f: f, log: log,
		cp:         nats.Parser{Dir: nats.ClientToServer, MaxPayload: f.cfg.MaxFrameBytes},
		sp:         nats.Parser{Dir: nats.ServerToClient, MaxControlLine: serverMaxControlLine, MaxPayload: f.cfg.MaxFrameBytes},
		rb:         make([]byte, readBufferSize),
		atBoundary: true,
	}
}

// conn is one proxied NATS connection. Read is called by the client →
// server copier, Write by the server → client copier, concurrently.
type conn struct {
	net.Conn
	f   *Filter
	log *slog.Logger

	// Client → server, touched only by Read.
	cp         nats.Parser
	rb         []byte
	r, w, fwd  int    // rb[r:fwd] is decided and to be forwarded; rb[fwd:w] unparsed
	skip       bool   // the current payload belongs to a dropped operation
	extra      []byte // synthesised bytes to forward after rb[r:fwd], before rb[fwd:w]
	extraBuf   []byte
	rerr       error
	perr       error // the parser's error, reported once rb[r:fwd] is out
	perrDone   bool
	peer       *peer
	cliHeaders bool

	// Server → client, under wmu.
	wmu        sync.Mutex
	sp         nats.Parser
	pending    []byte // a control line split across writes
	atBoundary bool   // no server frame is half-written to the client
	inject     []byte // -ERR replies waiting for a frame boundary
	werr       error
	srvHeaders bool

	subsMu sync.RWMutex
	subs   map[string]*metrics.NATSSubject // sid → handles of the subscribed pattern
}

// Read returns the next client bytes to forward to the server. It decides
// every complete frame buffered before returning, so a burst of small
// messages crosses in one read and one upstream write, not one per frame.
// Denied operations are cut out of the buffer; a traceparent header block is
// inserted in place.
func (c *conn) Read(p []byte) (n int, err error) {
	defer c.recoverPanic(&err)
	for {
		for len(c.extra) == 0 && c.perr == nil && c.fwd < c.w {
			n, fr, err := c.cp.Next(c.rb[c.fwd:c.w])
			if err != nil {
				c.perr = err // after what was decided before it
				break
			}
			if n == 0 {
				break // an incomplete control line
			}
			switch {
			case fr != nil:
				c.clientFrame(fr, n)
			case c.skip:
				c.cut(n)
			default:
				c.fwd += n
			}
		}
		if c.r < c.fwd {
			n := copy(p, c.rb[c.r:c.fwd])
			c.r += n
			return n, nil
		}
		if len(c.extra) > 0 {
			n := copy(p, c.extra)
			c.extra = c.extra[n:]
			return n, nil
		}
		if c.perr != nil {
			if !c.perrDone {
				c.perrDone = true
				c.protocolError(c.perr, nats.ClientToServer)
			}
			return 0, c.perr
		}
		if c.rerr != nil {
			return 0, c.rerr
		}
		// Need more bytes: keep the unparsed tail at the front.
		c.compact()
		n, err := c.Conn.Read(c.rb[c.w:])
		c.w += n
		if err != nil {
			c.rerr = err
		}
	}
}

// compact moves the undelivered bytes to the front of the buffer.
func (c *conn) compact() {
	if c.r > 0 {
		c.w = copy(c.rb, c.rb[c.r:c.w])
		c.fwd -= c.r
		c.r = 0
	}
}

// cut removes n bytes at fwd from the buffer.
func (c *conn) cut(n int) {
	c.w = c.fwd + copy(c.rb[c.fwd:], c.rb[c.fwd+n:c.w])
}

// clientFrame decides one client operation whose line is rb[fwd:fwd+n].
func (c *conn) clientFrame(fr *nats.Frame, n int) {
	c.skip = false
	switch fr.Op {
	case nats.OpConnect:
		var opts struct {
			Headers bool `json:"headers"`
		}
		_ = json.Unmarshal(fr.Args, &opts) // the server judges the JSON
		c.cliHeaders = opts.Headers
	case nats.OpPub, nats.OpHPub:
		if !c.allowed(true, fr) {
			c.drop(n)
			return
		}
		c.f.stats.Subject(metrics.NATSPublish, label(fr.Subject)).Add(fr.Size)
		if fr.Op == nats.OpPub && c.f.cfg.InjectTraceparent && c.cliHeaders && c.serverHeaders() {
			c.extraBuf = appendTraced(c.extraBuf[:0], fr)
			c.replaceLine(n, c.extraBuf)
			return
		}
	case nats.OpSub:
		if !c.allowed(false, fr) {
			c.drop(n)
			return
		}
		h := c.f.stats.Subject(metrics.NATSDeliver, label(fr.Subject))
		c.subsMu.Lock()
		if c.subs == nil {
			c.subs = map[string]*metrics.NATSSubject{}
		}
		c.subs[string(fr.SID)] = h
		c.subsMu.Unlock()
	case nats.OpUnsub:
		if fr.MaxMsgs == 0 {
			c.subsMu.Lock()
			delete(c.subs, string(fr.SID))
			c.subsMu.Unlock()
		}
	}
	c.fwd += n
}

// replaceLine replaces the n-byte line at fwd with ext, in place when the
// buffer has room, else by cutting it and forwarding ext (c.extra) once
// the bytes before it are out.
func (c *conn) replaceLine(n int, ext []byte) {
	grow := len(ext) - n
	if c.w+grow > len(c.rb) {
		c.compact()
	}
	if c.w+grow > len(c.rb) {
		c.cut(n)
		c.extra = ext
		return
	}
	copy(c.rb[c.fwd+len(ext):], c.rb[c.fwd+n:c.w])
	copy(c.rb[c.fwd:], ext)
	c.w += grow
	c.fwd += len(ext)
}

// drop discards an operation's line (and, through skip, its payload).
func (c *conn) drop(n int) {
	c.cut(n)
	c.skip = true
}

// allowed applies the policy to a PUB/HPUB (publish) or SUB, and on denial
// counts it and queues the -ERR nats-server would send.
func (c *conn) allowed(publish bool, fr *nats.Frame) bool {
	cfg := c.f.cfg
	if !cfg.enforcing() {
		return true
	}
	if c.peer == nil {
		p := peerOf(c.Conn)
		c.peer = &p
	}
	if len(cfg.Audit) > 0 && cfg.audited(publish, fr.Subject, c.peer) {
		op := "subscribe"
		if publish {
			op = "publish"
		}
		c.f.stats.Audited(op, fr.Subject)
		c.log.Info("nats operation matched an audit rule", "stat_prefix", cfg.StatPrefix, "operation", op,
			"subject", string(fr.Subject), "remote", c.RemoteAddr().String(), "spiffe_id", c.peer.spiffe)
	}
	if cfg.decide(publish, fr.Subject, c.peer) == Allow {
		return true
	}
	// nats-server's wording (server/client.go), which clients parse.
	msg := make([]byte, 0, 96)
	msg = append(msg, "-ERR 'Permissions Violation for "...)
	op := "subscribe"
	if publish {
		op = "publish"
		msg = append(msg, "Publish to "...)
		msg = strconv.AppendQuote(msg, string(fr.Subject))
	} else {
		msg = append(msg, "Subscription to "...)
		msg = strconv.AppendQuote(msg, string(fr.Subject))
		if len(fr.Queue) > 0 {
			msg = append(msg, " using queue "...)
			msg = strconv.AppendQuote(msg, string(fr.Queue))
		}
	}
	msg = append(msg, "'\r\n"...)
	c.f.stats.Denied(op, fr.Subject)
	c.log.Info("nats operation denied", "stat_prefix", cfg.StatPrefix, "operation", op,
		"subject", string(fr.Subject), "remote", c.RemoteAddr().String(), "spiffe_id", c.peer.spiffe)
	_ = c.injectToClient(msg)
	return false
}

// Write passes server bytes to the client, observing each frame.
func (c *conn) Write(p []byte) (n int, err error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	defer c.recoverPanic(&err)
	if c.werr != nil {
		return 0, c.werr
	}
	written, off := 0, 0
	boundary := func(pos int) error {
		if len(c.inject) == 0 {
			return nil
		}
		if _, err := c.Conn.Write(p[written:pos]); err != nil {
			return err
		}
		written = pos
		_, err := c.Conn.Write(c.inject)
		c.inject = c.inject[:0]
		return err
	}
	if len(c.pending) > 0 {
		j := bytes.IndexByte(p, '\n')
		if j < 0 {
			j = len(p) - 1
		}
		c.pending = append(c.pending, p[:j+1]...)
		n, fr, err := c.sp.Next(c.pending)
		if err != nil {
			return 0, c.serverError(err)
		}
		off = j + 1
		if n > 0 {
			c.serverFrame(fr)
			c.pending = c.pending[:0]
			if !c.sp.InPayload() {
				if err := boundary(off); err != nil {
					return 0, err
				}
			}
		}
	}
	for off < len(p) {
		n, fr, err := c.sp.Next(p[off:])
		if err != nil {
			return 0, c.serverError(err)
		}
		if n == 0 {
			c.pending = append(c.pending[:0], p[off:]...)
			break
		}
		if fr != nil {
			c.serverFrame(fr)
		}
		off += n
		if !c.sp.InPayload() {
			if err := boundary(off); err != nil {
				return 0, err
			}
		}
	}
	if _, err := c.Conn.Write(p[written:]); err != nil {
		return 0, err
	}
	c.atBoundary = len(c.pending) == 0 && !c.sp.InPayload()
	return len(p), nil
}

func (c *conn) serverFrame(fr *nats.Frame) {
	switch fr.Op {
	case nats.OpInfo:
		var info struct {
			Headers bool `json:"headers"`
		}
		_ = json.Unmarshal(fr.Args, &info)
		c.srvHeaders = info.Headers
	case nats.OpMsg, nats.OpHMsg:
		c.subsMu.RLock()
		h := c.subs[string(fr.SID)]
		c.subsMu.RUnlock()
		if h == nil {
			h = c.f.other
		}
		h.Add(fr.Size)
	}
}

func (c *conn) serverHeaders() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.srvHeaders
}

// injectToClient sends msg to the client now if no server frame is half
// written, else after the frame in progress.
func (c *conn) injectToClient(msg []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	if c.atBoundary {
		_, err := c.Conn.Write(msg)
		return err
	}
	c.inject = append(c.inject, msg...)
	return nil
}

// errText is what nats-server tells a client for each parse failure.
var errText = map[string]string{
	"control_line_too_long": "-ERR 'Maximum Control Line Exceeded'\r\n",
	"payload_too_large":     "-ERR 'Maximum Payload Violation'\r\n",
}

// protocolError ends the connection on a client stream that cannot be
// parsed: the client gets nats-server's -ERR, the reason is logged and
// counted.
func (c *conn) protocolError(err error, dir nats.Direction) {
	var pe *nats.ProtocolError
	reason := "malformed"
	if errors.As(err, &pe) {
		reason = pe.Reason
	}
	c.f.stats.ProtocolError(reason)
	c.log.Info("nats protocol error, closing the connection", "stat_prefix", c.f.cfg.StatPrefix,
		"direction", dir.String(), "remote", c.RemoteAddr().String(), "reason", reason, "error", err)
	if dir == nats.ClientToServer {
		t := errText[reason]
		if t == "" {
			t = "-ERR 'Unknown Protocol Operation'\r\n"
		}
		_ = c.injectToClient([]byte(t))
	}
	c.Conn.Close()
}

// errInternal replaces a panic of the filter's own code.
var errInternal = errors.New("nats filter: internal error")

// recoverPanic turns a panic in the filter into the end of this one
// connection (logged with its stack, counted as reason "internal_error"),
// so that a bug reachable by a client's bytes cannot take the proxy and
// every other connection down (net/http does the same per connection).
func (c *conn) recoverPanic(err *error) {
	v := recover()
	if v == nil {
		return
	}
	c.f.stats.ProtocolError("internal_error")
	c.log.Error("nats filter panic, closing the connection", "stat_prefix", c.f.cfg.StatPrefix,
		"remote", c.RemoteAddr().String(), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	c.Conn.Close()
	*err = errInternal
}

// serverError is protocolError for the server's stream; wmu is held.
func (c *conn) serverError(err error) error {
	c.werr = err
	c.protocolError(err, nats.ServerToClient)
	return err
}

// CloseWrite half-closes the downstream connection when it can.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// NetConn returns the wrapped connection.
func (c *conn) NetConn() net.Conn { return c.Conn }

// Subjects that are unique per connection or per message collapse to one
// label each, so they do not use up the cardinality cap: reply inboxes
// (nats.go's "_INBOX.<nuid>.<token>") and JetStream acknowledgements.
var (
	inboxPrefix, inboxLabel = []byte("_INBOX."), []byte("_INBOX.>")
	jsAckPrefix, jsAckLabel = []byte("$JS.ACK."), []byte("$JS.ACK.>")
)

// label is the subject label of a subject or subscription pattern.
func label(subject []byte) []byte {
	switch {
	case bytes.HasPrefix(subject, inboxPrefix):
		return inboxLabel
	case bytes.HasPrefix(subject, jsAckPrefix):
		return jsAckLabel
	}
	return subject
}
