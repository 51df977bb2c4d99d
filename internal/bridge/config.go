package bridge

import (
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"time"
)

// BrokerType is the protocol a Broker speaks.
type BrokerType string

// The broker types.
const (
	Kafka BrokerType = "kafka"
	NATS  BrokerType = "nats"
	AMQP  BrokerType = "amqp"
)

// Defaults of Subscription fields left zero.
const (
	DefaultConcurrency     = 1
	DefaultMaxDeliveries   = 5
	DefaultBackoffBase     = 100 * time.Millisecond
	DefaultBackoffMax      = 10 * time.Second
	DefaultDeliveryTimeout = 30 * time.Second
)

// Config is the bridge's whole desired state: Update replaces the previous
// one.
type Config struct {
	// Source, when set, is the CloudEvents source of raw bodies (over
	// Options.Source).
	Source string
	// Brokers the application may publish to and subscriptions read from,
	// by unique Name.
	Brokers []Broker
	// Subscriptions to consume and deliver to the application, by unique
	// Name.
	Subscriptions []Subscription
}

// Broker is one broker (or cluster) connection.
type Broker struct {
	// Name is what /publish/<name>/<topic> and Subscription.Broker use.
	Name string
	// Type is kafka, nats or amqp.
	Type BrokerType
	// Addresses: Kafka seed brokers (host:port), NATS server URLs
	// (nats://host:port) or host:port, AMQP URLs (amqp://host:port/vhost;
	// the first that answers is used). At least one.
	Addresses []string
	// JetStream (NATS only) publishes with JetStream acknowledgements and
	// consumes with durable pull consumers; false uses core NATS (publish
	// + flush, queue subscriptions: at most once).
	JetStream bool
	// UsernameFile and PasswordFile name files on the sidecar's host
	// holding the credentials (trailing newlines are trimmed). Empty: no
	// authentication (AMQP: the URL's user info). Kafka uses SASL/PLAIN.
	UsernameFile, PasswordFile string
	// TLS, when set, connects with TLS.
	TLS *TLS
}

// TLS is a broker connection's TLS configuration. Files are read on the
// sidecar's host when the broker connection is made.
type TLS struct {
	// CAFile verifies the broker; empty: the system roots.
	CAFile string
	// CertFile and KeyFile, both or neither, are the client certificate.
	CertFile, KeyFile string
	// ServerName overrides the name verified; empty: the address' host.
	ServerName string
}

// Subscription consumes one topic and delivers each message to the
// application.
type Subscription struct {
	// Name identifies the subscription (metrics label). Required, unique.
	Name string
	// Broker names one of Config.Brokers.
	Broker string
	// Topic is the Kafka topic, NATS subject (wildcards allowed) or AMQP
	// queue.
	Topic string
	// ConsumerGroup is the Kafka consumer group, the JetStream durable
	// consumer name (or core NATS queue group), and the AMQP consumer tag
	// prefix: instances of one group share the messages. Required.
	ConsumerGroup string
	// URL is where each message is POSTed
	// (http://127.0.0.1:<app port><path>). Required.
	URL string
	// Concurrency is the number of deliveries in flight. Default 1.
	Concurrency int
	// MaxDeliveries is how many times a message is POSTed before it is
	// dead-lettered. Default 5.
	MaxDeliveries int
	// BackoffBase and BackoffMax bound the exponential back-off between
	// attempts (base·2^(attempt-1), at most max, ±20 % jitter). Defaults
	// 100ms and 10s.
	BackoffBase, BackoffMax time.Duration
	// DeadLetter is the topic/subject/queue on the same broker that gets a
	// message after MaxDeliveries failed attempts. Empty: the message is
	// dropped (logged and counted as result "dropped").
	DeadLetter string
	// DeliveryTimeout bounds one POST. Default 30s.
	DeliveryTimeout time.Duration
}

// withDefaults returns s with zero fields set to their defaults.
func (s Subscription) withDefaults() Subscription {
	if s.Concurrency == 0 {
		s.Concurrency = DefaultConcurrency
	}
	if s.MaxDeliveries == 0 {
		s.MaxDeliveries = DefaultMaxDeliveries
	}
	if s.BackoffBase == 0 {
		s.BackoffBase = DefaultBackoffBase
	}
	if s.BackoffMax == 0 {
		s.BackoffMax = DefaultBackoffMax
	}
	if s.DeliveryTimeout == 0 {
		s.DeliveryTimeout = DefaultDeliveryTimeout
	}
	return s
}

// Validate reports every problem of c, each with its path
// (subscriptions[1].broker: ...).
func (c *Config) Validate() error {
	var errs []error
	fail := func(path, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, a...)))
	}
	brokers := map[string]BrokerType{}
	for i, b := range c.Brokers {
		p := fmt.Sprintf("brokers[%d]", i)
		switch {
		case b.Name == "":
			fail(p+".name", "required")
		case brokers[b.Name] != "":
			fail(p+".name", "duplicate %q", b.Name)
		}
		switch b.Type {
		case Kafka, NATS, AMQP:
			brokers[b.Name] = b.Type
		default:
			fail(p+".type", "%q is not kafka, nats or amqp", b.Type)
		}
		if len(b.Addresses) == 0 {
			fail(p+".addresses", "at least one required")
		}
		for j, a := range b.Addresses {
			if a == "" {
				fail(fmt.Sprintf("%s.addresses[%d]", p, j), "empty")
			}
		}
		if b.JetStream && b.Type != NATS {
			fail(p+".jetStream", "only for nats brokers")
		}
		if (b.UsernameFile == "") != (b.PasswordFile == "") {
			fail(p+".passwordFile", "usernameFile and passwordFile go together")
		}
		if t := b.TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
			fail(p+".tls.keyFile", "certFile and keyFile go together")
		}
	}
	names := map[string]bool{}
	for i, s := range c.Subscriptions {
		p := fmt.Sprintf("subscriptions[%d]", i)
		switch {
		case s.Name == "":
			fail(p+".name", "required")
		case names[s.Name]:
			fail(p+".name", "duplicate %q", s.Name)
		}
		names[s.Name] = true
		typ, ok := brokers[s.Broker]
		if !ok {
			fail(p+".broker", "no broker %q", s.Broker)
		}
		if err := checkTopic(typ, s.Topic, true); ok && err != nil {
			fail(p+".topic", "%v", err)
		}
		if s.DeadLetter != "" {
			if err := checkTopic(typ, s.DeadLetter, false); ok && err != nil {
				fail(p+".deadLetter", "%v", err)
			}
		}
		if s.ConsumerGroup == "" {
			fail(p+".consumerGroup", "required")
		}
		if u, err := url.Parse(s.URL); err != nil || u.Scheme != "http" || u.Host == "" {
			fail(p+".url", "%q is not an http:// URL", s.URL)
		}
		if s.Concurrency < 0 || s.Concurrency > 1024 {
			fail(p+".concurrency", "%d is not in [0, 1024]", s.Concurrency)
		}
		if s.MaxDeliveries < 0 {
			fail(p+".maxDeliveries", "%d is negative", s.MaxDeliveries)
		}
		if s.BackoffBase < 0 || s.BackoffMax < 0 || s.DeliveryTimeout < 0 {
			fail(p, "durations must not be negative")
		}
		if d := s.withDefaults(); d.BackoffMax < d.BackoffBase {
			fail(p+".backoffMax", "%v is below backoffBase %v", d.BackoffMax, d.BackoffBase)
		}
	}
	return errors.Join(errs...)
}

// sameBroker reports whether two broker configurations are equal (a
// running connection can be kept).
func sameBroker(a, b Broker) bool { return reflect.DeepEqual(a, b) }
