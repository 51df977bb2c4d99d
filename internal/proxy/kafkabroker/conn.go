package kafkabroker

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/trellis-mesh/trellis/internal/messaging/kafka"
	"github.com/trellis-mesh/trellis/internal/proxy/tlsx"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
)

// Filter is a configured kafka_broker filter of one filter chain.
type Filter struct {
	cfg   *Config
	stats *metrics.Kafka
}

// StatPrefix returns the filter's stat_prefix.
func (f *Filter) StatPrefix() string { return f.cfg.StatPrefix }

// Errors that close a connection.
var (
	ErrAPIKeyDenied = errors.New("kafka: api key not allowed")
	// ErrUnauthorizable is a Produce, Fetch or Metadata request of a
	// version the proxy cannot read while a topic policy is in force.
	ErrUnauthorizable = errors.New("kafka: request version unknown to the proxy cannot be authorized")
)

// Wrap returns c with the filter on it: reads return the client's requests
// to forward upstream, writes take the broker's responses. c is the
// downstream connection, a *tls.Conn when the chain terminates TLS.
func (f *Filter) Wrap(c net.Conn, log *slog.Logger) net.Conn {
	return &conn{Conn: c, f: f, log: log, br: bufio.NewReaderSize(c, 16<<10)}
}

// shrinkAbove is the buffer capacity above which an idle buffer is dropped
// rather than kept for the next frame.
const shrinkAbove = 1 << 20

// conn is one connection through the filter. Read is called by tcp_proxy's
// downstream→upstream copier and Write by its upstream→downstream one; mu
// orders everything written downstream.
type conn struct {
	net.Conn
	f   *Filter
	log *slog.Logger
	br  *bufio.Reader

	// Read side only.
	rbuf     []byte
	out      []byte // forwarded bytes not yet returned by Read
	pr       kafka.Principal
	havePeer bool

	mu       sync.Mutex
	inflight []*entry // requests awaiting a response, in order
	wbuf     []byte   // response bytes not yet a whole frame
	failed   error
}

// entry is a request awaiting its response: from the broker, or local (the
// proxy's own answer, sent when the responses before it have been).
type entry struct {
	corr  int32
	p     kafka.Pending
	start time.Time
	local []byte
	// undescribed are the topics a Metadata request named that its
	// response answered TOPIC_AUTHORIZATION_FAILED (the principal may not
	// describe them).
	undescribed []string
}

// Read returns request bytes to forward upstream.
func (c *conn) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if cap(c.rbuf) > shrinkAbove {
			c.rbuf = nil
		}
		frame, err := kafka.ReadFrame(c.br, &c.rbuf, c.f.cfg.MaxFrameBytes)
		if err != nil {
			if errors.Is(err, kafka.ErrFrameTooLarge) || errors.Is(err, kafka.ErrMalformed) {
				return 0, c.abort("request", err)
			}
			return 0, err
		}
		out, err := c.request(frame)
		if err != nil {
			return 0, c.abort("request", err)
		}
		c.out = out
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

// abort closes the connection for err, logging and counting why.
func (c *conn) abort(dir string, err error) error {
	switch {
	case errors.Is(err, kafka.ErrFrameTooLarge):
		c.f.stats.ProtocolError(metrics.KafkaFrameTooLarge)
	case errors.Is(err, kafka.ErrMalformed):
		c.f.stats.ProtocolError(metrics.KafkaMalformed)
	}
	c.log.Warn("kafka connection closed", "stat_prefix", c.f.cfg.StatPrefix, "remote", c.Conn.RemoteAddr().String(),
		"direction", dir, "reason", err.Error())
	// Close first: a Write blocked on a client that does not read holds mu.
	c.Conn.Close()
	c.mu.Lock()
	if c.failed == nil {
		c.failed = err
	}
	c.mu.Unlock()
	return err
}

func (c *conn) principal() kafka.Principal {
	if !c.havePeer {
		c.havePeer = true
		if ap, err := netip.ParseAddrPort(c.Conn.RemoteAddr().String()); err == nil {
			c.pr.Addr = ap.Addr().Unmap()
		}
		if tc, ok := c.Conn.(*tls.Conn); ok {
			cs := tc.ConnectionState()
			if leaf := tlsx.VerifiedPeer(&cs); leaf != nil {
				for _, u := range leaf.URIs {
					if u.Scheme == "spiffe" {
						c.pr.SPIFFEID = u.String()
						break
					}
				}
			}
		}
	}
	return c.pr
}

// request handles one request frame and returns the bytes to forward
// (nil when the proxy answers it itself).
func (c *conn) request(frame []byte) ([]byte, error) {
	req, err := kafka.ParseRequest(frame)
	if err != nil {
		return nil, err
	}
	k, cfg := req.Key, c.f.cfg
	c.f.stats.Request(k)
	if !cfg.keyAllowed(k) {
		c.f.stats.DeniedAPIKey(k)
		return nil, fmt.Errorf("%w: %s (key %d)", ErrAPIKeyDenied, kafka.APIName(k), k)
	}
	e := &entry{corr: req.Correlation, start: time.Now(),
		p: kafka.Pending{Key: k, Version: req.Version, Flexible: req.Flexible, AllTopics: req.AllTopics}}
	pol := cfg.Policy
	if pol != nil && !req.Known && (k == 0 || k == 1 || k == 3) {
		c.f.stats.DeniedTopic(k)
		return nil, fmt.Errorf("%w: %s v%d", ErrUnauthorizable, kafka.APIName(k), req.Version)
	}
	out := frame
	rewrite := false
	var denied []kafka.DeniedTopic
	switch m := req.Msg.(type) {
	case *kmsg.ProduceRequest:
		if pol != nil {
			pr := c.principal()
			denied = kafka.SplitProduce(m, func(t string) bool { return pol.Allowed(kafka.Produce, t, pr) })
			e.p.Denied = denied
		}
		for _, t := range req.Topics {
			if !isDenied(denied, t.Topic) {
				c.f.stats.Topic(t.Topic).Produced(t.Records, t.Bytes)
			}
		}
		if len(denied) > 0 {
			c.denied(req, denied)
			if len(m.Topics) == 0 {
				if req.NoResponse {
					return nil, nil
				}
				return nil, c.answer(e, kafka.DeniedProduceResponse(req.Version, denied))
			}
			rewrite = true
		}
		if cfg.Trace != nil && c.inject(m, req.Version) {
			rewrite = true
		}
		if rewrite {
			out = kafka.AppendRequest(nil, frame, req.Header, m)
		}
	case *kmsg.FetchRequest:
		if pol != nil {
			pr := c.principal()
			denied = kafka.SplitFetch(m, func(t string) bool { return pol.Allowed(kafka.Consume, t, pr) })
			e.p.Denied = denied
		}
		if len(denied) > 0 {
			c.denied(req, denied)
			if len(m.Topics) == 0 {
				return nil, c.answer(e, kafka.DeniedFetchResponse(m, denied))
			}
			out = kafka.AppendRequest(nil, frame, req.Header, m)
		}
	case *kmsg.MetadataRequest:
		if pol != nil {
			pr := c.principal()
			e.p.Describe = func(t string) bool {
				ok := pol.Allowed(kafka.Describe, t, pr)
				if !ok && !e.p.AllTopics {
					// An all-topics answer leaves the topic out, as
					// Kafka does: not a refusal the client sees.
					e.undescribed = append(e.undescribed, strings.Clone(t))
				}
				return ok
			}
		}
	}
	if pol != nil && pol.HasAudit() && (k == 0 || k == 1) {
		c.audit(req, pol)
	}
	if req.NoResponse {
		return out, nil
	}
	c.mu.Lock()
	c.inflight = append(c.inflight, e)
	c.mu.Unlock()
	return out, nil
}

func isDenied(denied []kafka.DeniedTopic, topic string) bool {
	for _, d := range denied {
		if d.Topic == topic {
			return true
		}
	}
	return false
}

func (c *conn) denied(req *kafka.Request, denied []kafka.DeniedTopic) {
	c.f.stats.DeniedTopic(req.Key)
	topics := make([]string, len(denied))
	for i, d := range denied {
		topics[i] = d.Topic
	}
	pr := c.principal()
	c.log.Info("kafka request refused by the topic policy", "stat_prefix", c.f.cfg.StatPrefix,
		"api", kafka.APIName(req.Key), "topics", topics, "client_id", string(req.ClientID),
		"source", pr.Addr.String(), "spiffe_id", pr.SPIFFEID)
}

// undescribed counts and logs a Metadata response that refused topics the
// client named: a producer that may not describe a topic learns of the
// refusal here (franz-go fails its records with TOPIC_AUTHORIZATION_FAILED
// without sending a Produce request), so the refusal is reported like a
// refused Produce.
func (c *conn) undescribed(e *entry) {
	c.f.stats.DeniedTopic(e.p.Key)
	pr := c.principal()
	c.log.Info("kafka request refused by the topic policy", "stat_prefix", c.f.cfg.StatPrefix,
		"api", kafka.APIName(e.p.Key), "operation", kafka.Describe.String(), "topics", e.undescribed,
		"source", pr.Addr.String(), "spiffe_id", pr.SPIFFEID)
}

// audit reports a Produce or Fetch request naming topics an AUDIT rule of
// pol matches (whatever the decision): logged and counted, never refused.
func (c *conn) audit(req *kafka.Request, pol *kafka.Policy) {
	op := kafka.Produce
	if req.Key == 1 {
		op = kafka.Consume
	}
	pr := c.principal()
	var topics []string
	for _, t := range req.Topics {
		if pol.Audited(op, t.Topic, pr) {
			topics = append(topics, strings.Clone(t.Topic)) // t.Topic may alias the read buffer
		}
	}
	if len(topics) == 0 {
		return
	}
	c.f.stats.AuditedTopic(req.Key)
	c.log.Info("kafka request matched an audit rule of the topic policy", "stat_prefix", c.f.cfg.StatPrefix,
		"api", kafka.APIName(req.Key), "operation", op.String(), "topics", topics, "client_id", string(req.ClientID),
		"source", pr.Addr.String(), "spiffe_id", pr.SPIFFEID)
}

// answer queues the proxy's own response to e's request: it is written at
// once if no response is outstanding, else after those before it.
func (c *conn) answer(e *entry, resp kmsg.Response) error {
	e.local = kafka.AppendResponse(nil, e.corr, resp)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failed != nil {
		return c.failed
	}
	c.inflight = append(c.inflight, e)
	return c.flushLocal()
}

// flushLocal writes the local answers at the head of the queue; mu is held.
func (c *conn) flushLocal() error {
	for len(c.inflight) > 0 && c.inflight[0].local != nil {
		e := c.inflight[0]
		c.inflight[0] = nil
		c.inflight = c.inflight[1:]
		c.f.stats.Response(e.p.Key, time.Since(e.start))
		for _, d := range e.p.Denied {
			for range d.Partitions {
				c.f.stats.Error(e.p.Key, kafka.TopicAuthorizationFailed)
			}
		}
		if _, err := c.Conn.Write(e.local); err != nil {
			return err
		}
	}
	return nil
}

// Write takes response bytes from upstream, handles each whole frame and
// writes it (perhaps rewritten) downstream.
func (c *conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failed != nil {
		return 0, c.failed
	}
	buf := append(c.wbuf, p...)
	off := 0
	for {
		size, ok := kafka.FrameSize(buf[off:])
		if !ok {
			break
		}
		if size > c.f.cfg.MaxFrameBytes || size < 4 {
			err := fmt.Errorf("%w: response frame size %d (limit %d)", kafka.ErrFrameTooLarge, size, c.f.cfg.MaxFrameBytes)
			if size < 4 {
				err = fmt.Errorf("%w: response frame size %d", kafka.ErrMalformed, size)
			}
			c.mu.Unlock()
			c.abort("response", err)
			c.mu.Lock()
			return 0, err
		}
		if len(buf)-off < 4+size {
			break
		}
		frame := buf[off : off+4+size]
		off += 4 + size
		if _, err := c.Conn.Write(c.response(frame)); err != nil {
			return 0, err
		}
		if err := c.flushLocal(); err != nil {
			return 0, err
		}
	}
	n := copy(buf, buf[off:])
	c.wbuf = buf[:n]
	if n == 0 && cap(c.wbuf) > shrinkAbove {
		c.wbuf = nil
	}
	return len(p), nil
}

// response handles one response frame and returns what to send; mu is
// held.
func (c *conn) response(frame []byte) []byte {
	corr, _ := kafka.Correlation(frame)
	var e *entry
	for i, q := range c.inflight {
		if q.local == nil && q.corr == corr {
			e = q
			c.inflight = append(c.inflight[:i:i], c.inflight[i+1:]...)
			break
		}
	}
	if e == nil {
		c.f.stats.ProtocolError(metrics.KafkaUnexpectedResponse)
		c.log.Debug("kafka response to no known request", "stat_prefix", c.f.cfg.StatPrefix, "correlation_id", corr)
		return frame
	}
	resp, out, err := kafka.ParseResponse(frame, &e.p, &c.f.cfg.Rewrite)
	if err != nil {
		// Envoy forwards what it cannot parse.
		c.f.stats.ProtocolError(metrics.KafkaMalformed)
		c.log.Debug("kafka response not parsed", "stat_prefix", c.f.cfg.StatPrefix, "api", kafka.APIName(e.p.Key), "error", err)
		out = frame
	}
	c.f.stats.Response(e.p.Key, time.Since(e.start))
	if len(e.undescribed) > 0 {
		c.undescribed(e)
	}
	for _, code := range resp.Errors {
		c.f.stats.Error(e.p.Key, code)
	}
	for _, t := range resp.Topics {
		if t.Records > 0 || t.Bytes > 0 {
			c.f.stats.Topic(t.Topic).Fetched(t.Records, t.Bytes)
		}
	}
	return out
}

// CloseWrite half-closes the downstream connection.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// NetConn returns the wrapped connection.
func (c *conn) NetConn() net.Conn { return c.Conn }
