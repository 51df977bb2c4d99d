package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// amqpPrefix is the CloudEvents AMQP binding's application-property
// prefix (binary content mode).
const amqpPrefix = "cloudEvents_"

// amqpPublishChannels bounds the idle publishing channels kept per
// connection (one publish in flight per channel).
const amqpPublishChannels = 32

// amqpClient keeps one connection, redialled when it fails, with a pool
// of confirm-mode channels for publishing. Topics are queues, reached
// through the default exchange; the bridge declares them durable.
type amqpClient struct {
	cfg  Broker
	log  *slog.Logger
	urls []string
	acfg amqp.Config

	mu       sync.Mutex
	conn     *amqp.Connection
	declared map[string]bool // queues declared on conn
	pool     chan *pubChannel
	closed   bool
}

// pubChannel is a confirm-mode channel with its basic.return listener.
type pubChannel struct {
	conn    *amqp.Connection
	ch      *amqp.Channel
	returns chan amqp.Return
}

func newAMQPClient(bc Broker, log *slog.Logger) (*amqpClient, error) {
	user, pass, err := credentials(bc)
	if err != nil {
		return nil, err
	}
	tc, err := tlsConfig(bc.TLS)
	if err != nil {
		return nil, err
	}
	c := &amqpClient{cfg: bc, log: log, acfg: amqp.Config{Dial: amqp.DefaultDial(5 * time.Second), TLSClientConfig: tc,
		Properties: amqp.Table{"connection_name": "trellis-bridge"}}, pool: make(chan *pubChannel, amqpPublishChannels)}
	for _, a := range bc.Addresses {
		u, err := amqp.ParseURI(a)
		if err != nil {
			return nil, fmt.Errorf("address %q: %w", a, err)
		}
		if user != "" {
			u.Username, u.Password = user, pass
		}
		c.urls = append(c.urls, u.String())
	}
	return c, nil
}

// connection returns the open connection, dialling when there is none.
func (c *amqpClient) connection() (*amqp.Connection, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("closed")
	}
	if c.conn != nil && !c.conn.IsClosed() {
		return c.conn, nil
	}
	var errs []error
	for _, u := range c.urls {
		conn, err := amqp.DialConfig(u, c.acfg)
		if err == nil {
			c.conn, c.declared = conn, map[string]bool{}
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func (c *amqpClient) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.conn != nil {
		c.conn.Close()
	}
}

// declare declares queue durable once per connection.
func (c *amqpClient) declare(conn *amqp.Connection, ch *amqp.Channel, queue string) error {
	c.mu.Lock()
	done := c.conn == conn && c.declared[queue]
	c.mu.Unlock()
	if done {
		return nil
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		return err
	}
	c.mu.Lock()
	if c.conn == conn {
		c.declared[queue] = true
	}
	c.mu.Unlock()
	return nil
}

func (c *amqpClient) getChannel() (*pubChannel, error) {
	conn, err := c.connection()
	if err != nil {
		return nil, err
	}
	for {
		select {
		case pc := <-c.pool:
			if pc.conn == conn && !pc.ch.IsClosed() {
				return pc, nil
			}
			continue
		default:
		}
		break
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		ch.Close()
		return nil, err
	}
	pc := &pubChannel{conn: conn, ch: ch, returns: ch.NotifyReturn(make(chan amqp.Return, 1))}
	return pc, nil
}

func (c *amqpClient) putChannel(pc *pubChannel) {
	select {
	case c.pool <- pc:
	default:
		pc.ch.Close()
	}
}

// Publish sends m persistent and mandatory to queue on a confirm-mode
// channel and waits for the broker's ack: a nack or a basic.return
// (unroutable; RabbitMQ sends it before the ack) is a refusal.
func (c *amqpClient) Publish(ctx context.Context, queue string, m *Message) error {
	pc, err := c.getChannel()
	if err != nil {
		return fmt.Errorf("%w: amqp: %v", ErrUnavailable, err)
	}
	if err := c.declare(pc.conn, pc.ch, queue); err != nil {
		pc.ch.Close()
		return amqpErr("amqp queue.declare "+queue, err)
	}
	p := amqp.Publishing{Headers: amqp.Table{}, ContentType: m.Attrs["datacontenttype"], DeliveryMode: amqp.Persistent,
		MessageId: m.Attrs["id"], Body: m.Data}
	for _, k := range m.sortedAttrs() {
		p.Headers[amqpPrefix+k] = m.Attrs[k]
	}
	dc, err := pc.ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false, p)
	if err != nil {
		pc.ch.Close()
		return amqpErr("amqp publish", err)
	}
	acked, err := dc.WaitContext(ctx)
	if err != nil {
		// The channel may still deliver this confirm: do not reuse it.
		pc.ch.Close()
		return amqpErr("amqp confirm", err)
	}
	select {
	case ret := <-pc.returns:
		c.putChannel(pc)
		return fmt.Errorf("%w: amqp: returned unroutable: %d %s", ErrRefused, ret.ReplyCode, ret.ReplyText)
	default:
	}
	c.putChannel(pc)
	if !acked {
		return fmt.Errorf("%w: amqp: broker nacked the message", ErrRefused)
	}
	return nil
}

func amqpErr(what string, err error) error {
	var ae *amqp.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", what, context.DeadlineExceeded)
	case errors.As(err, &ae) && ae.Code != amqp.ChannelError && ae.Code != amqp.ConnectionForced && !errors.Is(err, amqp.ErrClosed):
		return fmt.Errorf("%w: %s: %v", ErrRefused, what, err)
	default:
		return fmt.Errorf("%w: %s: %v", ErrUnavailable, what, err)
	}
}

func (c *amqpClient) message(d *amqp.Delivery) *Message {
	attrs, ok := toAttrs(amqpPrefix, func(yield func(k, v string) bool) {
		for k, v := range d.Headers {
			if s, isStr := v.(string); isStr && !yield(k, s) {
				return
			}
		}
	})
	if ok {
		if d.ContentType != "" {
			attrs["datacontenttype"] = d.ContentType
		}
		return &Message{Attrs: attrs, Data: d.Body}
	}
	id := d.MessageId
	if id == "" {
		id = d.RoutingKey + "/" + strconv.FormatUint(d.DeliveryTag, 10) + "/" + newID()
	}
	return rawMessage(id, "/trellis/bridge/"+c.cfg.Name+"/"+d.RoutingKey, d.ContentType, d.Body, nil)
}

// Consume reads queue s.Topic with manual acks and a prefetch of
// s.Concurrency, on a channel of its own.
func (c *amqpClient) Consume(ctx context.Context, s *Subscription, settle func(context.Context, *Message) error) error {
	conn, err := c.connection()
	if err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.Qos(s.Concurrency, 0, false); err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(s.Topic, true, false, false, false, nil); err != nil {
		return err
	}
	tag := s.ConsumerGroup + "-" + newID()
	deliveries, err := ch.ConsumeWithContext(ctx, s.Topic, tag, false, false, false, false, nil)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	for range s.Concurrency {
		wg.Go(func() {
			for d := range deliveries {
				if settle(ctx, c.message(&d)) == nil {
					_ = d.Ack(false)
				}
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("amqp consumer on %s: channel closed", s.Topic)
}

// Lag is the queue's ready message count (queue.declare passive).
func (c *amqpClient) Lag(_ context.Context, s *Subscription) (int64, error) {
	conn, err := c.connection()
	if err != nil {
		return 0, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return 0, err
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(s.Topic, true, false, false, false, nil)
	if err != nil {
		return 0, err
	}
	return int64(q.Messages), nil
}
