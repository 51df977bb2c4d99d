package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsPrefix is the header prefix of CloudEvents attributes on NATS
// messages (binary content mode, as the HTTP binding spells it).
const natsPrefix = "Ce-"

// natsAckWait is the JetStream consumers' ack wait; a message being
// delivered is marked in progress every third of it.
const natsAckWait = 30 * time.Second

// heartbeat calls f every d until the returned stop is called.
func heartbeat(d time.Duration, f func()) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				f()
			}
		}
	}()
	return func() { close(done) }
}

// natsClient publishes with JetStream acknowledgements (or core publish +
// flush) and consumes with durable pull consumers (or queue
// subscriptions). nats.go reconnects on its own.
type natsClient struct {
	cfg Broker
	log *slog.Logger
	nc  *nats.Conn
	js  jetstream.JetStream

	mu      sync.Mutex
	streams map[string]string // subject → stream ensured to cover it

	refusals refusals
}

// refusals tell publishes in flight that the server refused a publish to
// their subject: NATS answers a refused PUB (nats-server's permissions, or
// the mesh's NATS filter applying an AccessPolicy at the server's sidecar)
// only with an asynchronous -ERR 'Permissions Violation for Publish to
// "<subject>"', which nats.go hands to the connection's error handler.
// Without this a JetStream publish would wait for its acknowledgement
// until the publish timeout (504).
type refusals struct {
	mu      sync.Mutex
	waiting map[string]map[*context.CancelCauseFunc]struct{} // subject → publishes
}

// watch registers a publish to subject: a refusal of subject cancels it
// with the refusal as the cause. The returned func unregisters it.
func (r *refusals) watch(subject string, cancel context.CancelCauseFunc) func() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.waiting == nil {
		r.waiting = map[string]map[*context.CancelCauseFunc]struct{}{}
	}
	set := r.waiting[subject]
	if set == nil {
		set = map[*context.CancelCauseFunc]struct{}{}
		r.waiting[subject] = set
	}
	key := &cancel
	set[key] = struct{}{}
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(set, key)
		if len(set) == 0 {
			delete(r.waiting, subject)
		}
	}
}

// report cancels the publishes waiting on the subject err names.
func (r *refusals) report(err error) {
	subject, ok := refusedSubject(err)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for cancel := range r.waiting[subject] {
		(*cancel)(err)
	}
}

// refusedSubject is the subject of a publish permissions violation
// (nats.go: `nats: permissions violation: Permissions Violation for
// Publish to "<subject>"`).
func refusedSubject(err error) (string, bool) {
	if err == nil || !errors.Is(err, nats.ErrPermissionViolation) {
		return "", false
	}
	_, rest, ok := strings.Cut(err.Error(), `for Publish to "`)
	if !ok {
		return "", false
	}
	subject, _, ok := strings.Cut(rest, `"`)
	return subject, ok
}

// refused is the error of a publish to subject the server refused.
func refused(subject string, err error) error {
	return fmt.Errorf("%w: nats publish to %q: not authorized (the subject policy or permissions at the server refuse this identity): %v", ErrRefused, subject, err)
}

func newNATSClient(bc Broker, log *slog.Logger) (*natsClient, error) {
	opts := []nats.Option{nats.Name("trellis-bridge"), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true), nats.ReconnectBufSize(-1)}
	user, pass, err := credentials(bc)
	if err != nil {
		return nil, err
	}
	if user != "" {
		opts = append(opts, nats.UserInfo(user, pass))
	}
	tc, err := tlsConfig(bc.TLS)
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, nats.Secure(tc))
	}
	c := &natsClient{cfg: bc, log: log, streams: map[string]string{}}
	opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
		if sub == nil && errors.Is(err, nats.ErrPermissionViolation) {
			c.refusals.report(err)
			return
		}
		log.Warn("nats", "err", err)
	}))
	nc, err := nats.Connect(strings.Join(bc.Addresses, ","), opts...)
	if err != nil {
		return nil, err
	}
	c.nc = nc
	if bc.JetStream {
		if c.js, err = jetstream.New(nc); err != nil {
			nc.Close()
			return nil, err
		}
	}
	return c, nil
}

func (c *natsClient) Close() { c.nc.Close() }

func (c *natsClient) msg(subject string, m *Message) *nats.Msg {
	nm := nats.NewMsg(subject)
	nm.Data = m.Data
	for _, k := range m.sortedAttrs() {
		nm.Header.Set(natsPrefix+k, m.Attrs[k])
	}
	if ct := m.Attrs["datacontenttype"]; ct != "" {
		nm.Header.Set("Content-Type", ct)
	}
	return nm
}

// Publish: with JetStream, the stream's acknowledgement (the event id is
// the Nats-Msg-Id, so a retried publish inside the stream's duplicate
// window is stored once); a subject no stream covers gets a stream made
// for it. Core NATS: publish, then flush (the server has read it). A
// publish the server refuses (a permissions violation for its subject)
// is ErrRefused at once, with JetStream as with core NATS.
func (c *natsClient) Publish(ctx context.Context, subject string, m *Message) error {
	if st := c.nc.Status(); st != nats.CONNECTED {
		// Not connected yet (or reconnecting): nats.go would answer a
		// message with headers "headers not supported by this server".
		// Through the mesh the first dial can precede the sidecar's
		// outbound listener (docs/bridge.md, "Through the mesh").
		return fmt.Errorf("%w: nats: not connected to %s (%v)", ErrUnavailable, strings.Join(c.cfg.Addresses, ","), st)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer c.refusals.watch(subject, cancel)()
	nm := c.msg(subject, m)
	if c.js == nil {
		// The server answers a refused PUB before the PONG of the flush,
		// and nats.go records it as the connection's last error before it
		// reads the PONG; the error handler (the cancel above) may run
		// later. A refusal of another publish to the subject in flight at
		// the same time counts for this one too: the policy is per subject.
		before := c.nc.LastError()
		if err := c.nc.PublishMsg(nm); err != nil {
			return fmt.Errorf("%w: nats publish: %v", ErrUnavailable, err)
		}
		err := c.nc.FlushWithContext(ctx)
		if last := c.nc.LastError(); last != before {
			if s, ok := refusedSubject(last); ok && s == subject {
				return refused(subject, last)
			}
		}
		if cause := context.Cause(ctx); errors.Is(cause, nats.ErrPermissionViolation) {
			return refused(subject, cause)
		}
		if err != nil {
			return natsErr("nats flush", err)
		}
		return nil
	}
	nm.Header.Set(jetstream.MsgIDHeader, m.Attrs["id"])
	_, err := c.js.PublishMsg(ctx, nm)
	if errors.Is(err, jetstream.ErrNoStreamResponse) {
		if _, serr := c.ensureStream(ctx, subject); serr != nil {
			return natsErr("jetstream stream for "+subject, serr)
		}
		_, err = c.js.PublishMsg(ctx, nm)
	}
	if cause := context.Cause(ctx); err != nil && errors.Is(cause, nats.ErrPermissionViolation) {
		return refused(subject, cause)
	}
	if err != nil {
		return natsErr("jetstream publish", err)
	}
	return nil
}

func natsErr(what string, err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		return fmt.Errorf("%s: %w", what, context.DeadlineExceeded)
	case errors.As(err, &apiErr):
		return fmt.Errorf("%w: %s: %v", ErrRefused, what, err)
	default:
		return fmt.Errorf("%w: %s: %v", ErrUnavailable, what, err)
	}
}

// ensureStream finds the stream covering subject or creates
// "TRELLIS_<subject>" (file storage, limits retention) for it.
func (c *natsClient) ensureStream(ctx context.Context, subject string) (string, error) {
	c.mu.Lock()
	name, ok := c.streams[subject]
	c.mu.Unlock()
	if ok {
		return name, nil
	}
	name, err := c.js.StreamNameBySubject(ctx, subject)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		name = streamName(subject)
		_, err = c.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subject}, Storage: jetstream.FileStorage})
	}
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	c.streams[subject] = name
	c.mu.Unlock()
	return name, nil
}

// streamName makes a stream name of a subject: "TRELLIS_" + the subject
// with '.', '*' and '>' spelled out.
func streamName(subject string) string {
	return "TRELLIS_" + strings.NewReplacer(".", "_", "*", "STAR", ">", "GT").Replace(subject)
}

// durableName makes a consumer name of a group name (no '.', '*', '>' or
// white space).
func durableName(group string) string {
	return strings.Map(func(r rune) rune {
		if r == '.' || r == '*' || r == '>' || r <= ' ' {
			return '_'
		}
		return r
	}, group)
}

func (c *natsClient) message(m *nats.Msg, id string) *Message {
	attrs, ok := toAttrs(natsPrefix, func(yield func(k, v string) bool) {
		for k, vs := range m.Header {
			if len(vs) > 0 && !yield(k, vs[0]) {
				return
			}
		}
	})
	if ok {
		if ct := m.Header.Get("Content-Type"); ct != "" {
			attrs["datacontenttype"] = ct
		}
		return &Message{Attrs: attrs, Data: m.Data}
	}
	return rawMessage(id, "/trellis/bridge/"+c.cfg.Name+"/"+m.Subject, m.Header.Get("Content-Type"), m.Data, nil)
}

// Consume: JetStream with a durable pull consumer named after the group
// (explicit acks, at most Concurrency unacknowledged); core NATS with a
// queue subscription in the group (no acknowledgements: at most once).
func (c *natsClient) Consume(ctx context.Context, s *Subscription, settle func(context.Context, *Message) error) error {
	if c.js == nil {
		return c.consumeCore(ctx, s, settle)
	}
	stream, err := c.ensureStream(ctx, s.Topic)
	if err != nil {
		return fmt.Errorf("stream for %s: %w", s.Topic, err)
	}
	cons, err := c.js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable: durableName(s.ConsumerGroup), FilterSubject: s.Topic, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: natsAckWait, MaxAckPending: s.Concurrency, MaxDeliver: -1,
	})
	if err != nil {
		return fmt.Errorf("consumer %s: %w", s.ConsumerGroup, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(s.Concurrency))
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	msgs := make(chan jetstream.Msg)
	var wg sync.WaitGroup
	for range s.Concurrency {
		wg.Go(func() {
			for jm := range msgs {
				id := s.Topic
				if md, err := jm.Metadata(); err == nil {
					id = md.Stream + "/" + strconv.FormatUint(md.Sequence.Stream, 10)
				}
				m := c.message(&nats.Msg{Subject: jm.Subject(), Header: jm.Headers(), Data: jm.Data()}, id)
				// Keep the broker from redelivering while attempts and
				// back-offs run longer than AckWait.
				stopBeat := heartbeat(natsAckWait/3, func() { _ = jm.InProgress() })
				err := settle(ctx, m)
				stopBeat()
				if err == nil {
					_ = jm.Ack()
				}
			}
		})
	}
	defer wg.Wait()
	defer close(msgs)
	for {
		jm, err := it.Next()
		if err != nil {
			it.Stop()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("jetstream consumer %s: %w", s.ConsumerGroup, err)
		}
		msgs <- jm
	}
}

func (c *natsClient) consumeCore(ctx context.Context, s *Subscription, settle func(context.Context, *Message) error) error {
	// A synchronous subscription buffers up to nats.go's pending limits
	// (65,536 messages); a channel subscription would drop what does not
	// fit its channel.
	sub, err := c.nc.QueueSubscribeSync(s.Topic, s.ConsumerGroup)
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	errc := make(chan error, s.Concurrency)
	var wg sync.WaitGroup
	for range s.Concurrency {
		wg.Go(func() {
			for {
				m, err := sub.NextMsgWithContext(ctx)
				if err != nil {
					errc <- err
					return
				}
				_ = settle(ctx, c.message(m, newID()))
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return <-errc
}

// Lag is the JetStream consumer's pending count (core NATS: none).
func (c *natsClient) Lag(ctx context.Context, s *Subscription) (int64, error) {
	if c.js == nil {
		return 0, errors.New("core NATS reports no lag")
	}
	stream, err := c.ensureStream(ctx, s.Topic)
	if err != nil {
		return 0, err
	}
	cons, err := c.js.Consumer(ctx, stream, durableName(s.ConsumerGroup))
	if err != nil {
		return 0, err
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return 0, err
	}
	return int64(info.NumPending), nil
}
