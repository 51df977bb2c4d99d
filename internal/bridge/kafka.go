package bridge

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
)

// kafkaPrefix is the CloudEvents Kafka binding's header prefix (binary
// content mode).
const kafkaPrefix = "ce_"

// kafkaClient produces with acks=all and runs one group consumer per
// subscription.
type kafkaClient struct {
	cfg  Broker
	opts []kgo.Opt
	log  *slog.Logger
	prod *kgo.Client
	adm  *kadm.Client
}

func newKafkaClient(bc Broker, log *slog.Logger) (*kafkaClient, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(bc.Addresses...), kgo.AllowAutoTopicCreation()}
	user, pass, err := credentials(bc)
	if err != nil {
		return nil, err
	}
	if user != "" {
		opts = append(opts, kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()))
	}
	tc, err := tlsConfig(bc.TLS)
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	// acks=all is franz-go's default (idempotent producer); say it anyway.
	prod, err := kgo.NewClient(append(opts, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))...)
	if err != nil {
		return nil, err
	}
	return &kafkaClient{cfg: bc, opts: opts, log: log, prod: prod, adm: kadm.NewClient(prod)}, nil
}

func (c *kafkaClient) Close() { c.prod.Close() }

func (c *kafkaClient) Publish(ctx context.Context, topic string, m *Message) error {
	rec := &kgo.Record{Topic: topic, Key: m.Key, Value: m.Data}
	for _, k := range m.sortedAttrs() {
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: kafkaPrefix + k, Value: []byte(m.Attrs[k])})
	}
	if ct := m.Attrs["datacontenttype"]; ct != "" {
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: "content-type", Value: []byte(ct)})
	}
	err := c.prod.ProduceSync(ctx, rec).FirstErr()
	var ke *kerr.Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, kgo.ErrRecordTimeout):
		return fmt.Errorf("kafka produce: %w", context.DeadlineExceeded)
	case errors.Is(err, kerr.TopicAuthorizationFailed):
		// Through the mesh this is the broker's sidecar applying an
		// AccessPolicy to the sidecar's identity (docs/bridge.md,
		// "Through the mesh"); without it, the broker's ACLs.
		return fmt.Errorf("%w: kafka produce to %q: not authorized (the topic policy or ACLs at the broker refuse this identity): %v", ErrRefused, topic, err)
	case errors.As(err, &ke):
		return fmt.Errorf("%w: kafka produce: %v", ErrRefused, err)
	default:
		return fmt.Errorf("%w: kafka produce: %v", ErrUnavailable, err)
	}
}

// message converts a record: CloudEvents headers when present, else a raw
// event whose id is topic/partition/offset.
func (c *kafkaClient) message(r *kgo.Record) *Message {
	attrs, ok := toAttrs(kafkaPrefix, func(yield func(k, v string) bool) {
		for _, h := range r.Headers {
			if !yield(h.Key, string(h.Value)) {
				return
			}
		}
	})
	var ct string
	for _, h := range r.Headers {
		if h.Key == "content-type" {
			ct = string(h.Value)
		}
	}
	if ok {
		if ct != "" {
			attrs["datacontenttype"] = ct
		}
		return &Message{Attrs: attrs, Data: r.Value, Key: r.Key}
	}
	id := r.Topic + "/" + strconv.Itoa(int(r.Partition)) + "/" + strconv.FormatInt(r.Offset, 10)
	return rawMessage(id, "/trellis/bridge/"+c.cfg.Name+"/"+r.Topic, ct, r.Value, r.Key)
}

// Consume joins s.ConsumerGroup and processes each poll's records in
// s.Concurrency lanes: a record goes to the lane of its key's hash (of
// its partition when it has no key), and a lane handles its records in
// order, so per-key order (and per-partition order with concurrency 1)
// holds. Offsets are committed after every record of the poll is settled,
// and rebalances wait for that (BlockRebalanceOnPoll): at least once.
func (c *kafkaClient) Consume(ctx context.Context, s *Subscription, settle func(context.Context, *Message) error) error {
	cl, err := kgo.NewClient(append(c.opts[:len(c.opts):len(c.opts)],
		kgo.ConsumerGroup(s.ConsumerGroup), kgo.ConsumeTopics(s.Topic),
		kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	lanes := make([][]*kgo.Record, s.Concurrency)
	for {
		fs := cl.PollRecords(ctx, 500)
		if ctx.Err() != nil {
			cl.AllowRebalance()
			return ctx.Err()
		}
		fetchErrs := 0
		fs.EachError(func(t string, p int32, err error) {
			fetchErrs++
			c.log.Warn("kafka fetch", "topic", t, "partition", p, "err", err)
		})
		if fetchErrs > 0 && fs.NumRecords() == 0 {
			// Errors only (the broker away): do not spin on them.
			cl.AllowRebalance()
			if !sleep(ctx, time.Second) {
				return ctx.Err()
			}
			continue
		}
		for i := range lanes {
			lanes[i] = lanes[i][:0]
		}
		fs.EachRecord(func(r *kgo.Record) {
			lanes[lane(r, len(lanes))] = append(lanes[lane(r, len(lanes))], r)
		})
		var failed error
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, recs := range lanes {
			if len(recs) == 0 {
				continue
			}
			wg.Go(func() {
				for _, r := range recs {
					if err := settle(ctx, c.message(r)); err != nil {
						mu.Lock()
						failed = err
						mu.Unlock()
						return
					}
				}
			})
		}
		wg.Wait()
		if failed != nil {
			// Shutting down mid-poll: commit nothing, the group re-reads.
			cl.AllowRebalance()
			return failed
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			c.log.Warn("kafka commit", "group", s.ConsumerGroup, "err", err)
		}
		cl.AllowRebalance()
	}
}

func lane(r *kgo.Record, n int) int {
	if n == 1 {
		return 0
	}
	h := fnv.New32a()
	if r.Key != nil {
		h.Write(r.Key)
	} else {
		h.Write([]byte{byte(r.Partition >> 24), byte(r.Partition >> 16), byte(r.Partition >> 8), byte(r.Partition)})
	}
	return int(h.Sum32() % uint32(n))
}

// Lag is the group's total lag on s.Topic (kadm).
func (c *kafkaClient) Lag(ctx context.Context, s *Subscription) (int64, error) {
	lags, err := c.adm.Lag(ctx, s.ConsumerGroup)
	if err != nil {
		return 0, err
	}
	l, ok := lags[s.ConsumerGroup]
	if !ok {
		return 0, fmt.Errorf("group %q: no lag reported", s.ConsumerGroup)
	}
	if err := l.Error(); err != nil {
		return 0, err
	}
	return l.Lag.TotalByTopic()[s.Topic].Lag, nil
}
