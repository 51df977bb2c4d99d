package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The HTTP bridge's kinds (docs/bridge.md).
const (
	KindBroker       = "Broker"
	KindSubscription = "Subscription"
)

// Broker is a message broker (or cluster) the sidecars of its mesh bridge
// to: applications publish to it over HTTP (Dataplane spec.bridge) and
// Subscriptions consume from it. The sidecar connects to it itself, with
// credentials read from files on its own host: secrets never pass through
// the control plane.
type Broker struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              BrokerSpec `json:"spec"`
	Status            Status     `json:"status,omitempty"`
}

// BrokerType is the protocol a Broker speaks.
type BrokerType string

// The broker types.
const (
	BrokerKafka BrokerType = "kafka"
	BrokerNATS  BrokerType = "nats"
	BrokerAMQP  BrokerType = "amqp"
)

// BrokerSpec is a Broker's desired state.
type BrokerSpec struct {
	// Type is kafka, nats or amqp (AMQP 0-9-1, RabbitMQ). Required.
	Type BrokerType `json:"type"`
	// Addresses: Kafka seed brokers (host:port), NATS servers
	// (nats://host:port or host:port), AMQP URLs (amqp://host:port/vhost
	// or amqps://). At least one.
	Addresses []string `json:"addresses"`
	// NATS holds NATS-only settings.
	NATS *BrokerNATSSpec `json:"nats,omitempty"`
	// Credentials, when set, authenticate the sidecar (Kafka SASL/PLAIN,
	// NATS user and password, AMQP PLAIN).
	Credentials *BrokerCredentials `json:"credentials,omitempty"`
	// TLS, when set, connects with TLS.
	TLS *BrokerTLS `json:"tls,omitempty"`
}

// BrokerNATSSpec are a NATS Broker's settings.
type BrokerNATSSpec struct {
	// JetStream publishes with JetStream acknowledgements and consumes
	// with durable pull consumers (at least once). False: core NATS,
	// publish + flush and queue subscriptions (at most once).
	JetStream bool `json:"jetStream,omitempty"`
}

// BrokerCredentials name files on each sidecar's host (absolute paths).
type BrokerCredentials struct {
	UsernameFile string `json:"usernameFile"`
	PasswordFile string `json:"passwordFile"`
}

// BrokerTLS is the broker connection's TLS; files are on each sidecar's
// host (absolute paths).
type BrokerTLS struct {
	// CAFile verifies the broker. Default: the system roots.
	CAFile string `json:"caFile,omitempty"`
	// CertFile and KeyFile (both or neither) are a client certificate.
	CertFile string `json:"certFile,omitempty"`
	KeyFile  string `json:"keyFile,omitempty"`
	// ServerName overrides the name verified. Default: the address' host.
	ServerName string `json:"serverName,omitempty"`
}

// Subscription makes the sidecars of a Service's instances consume a
// topic and POST each message (a CloudEvent in binary content mode) to
// the application; a 2xx acknowledges it, anything else is retried with
// exponential back-off and, after retry.maxDeliveries, sent to the
// dead-letter topic. Delivery is at least once.
type Subscription struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              SubscriptionSpec `json:"spec"`
	Status            Status           `json:"status,omitempty"`
}

// SubscriptionSpec is a Subscription's desired state.
type SubscriptionSpec struct {
	// BrokerRef names a Broker of the same namespace and mesh. Required.
	BrokerRef LocalRef `json:"brokerRef"`
	// Topic is the Kafka topic, NATS subject (wildcards allowed) or AMQP
	// queue. Required.
	Topic string `json:"topic"`
	// ConsumerGroup shares the messages among its members: the Kafka
	// consumer group, JetStream durable consumer (core NATS queue group),
	// AMQP consumers of the queue. Default: the Subscription's name.
	ConsumerGroup string `json:"consumerGroup,omitempty"`
	// TargetRef names the Service (same namespace) whose instances
	// consume. Required.
	TargetRef LocalRef `json:"targetRef"`
	// Port selects the Service port whose inbound application port
	// receives deliveries. Optional when the instances have one inbound.
	Port int32 `json:"port,omitempty"`
	// Path is the application's path deliveries are POSTed to. Default "/".
	Path string `json:"path,omitempty"`
	// Concurrency is the number of deliveries in flight per instance.
	// Default 1 (with Kafka: per-partition order; above 1 per-key order).
	Concurrency int32 `json:"concurrency,omitempty"`
	// Retry bounds redelivery.
	Retry *SubscriptionRetry `json:"retry,omitempty"`
	// DeadLetter receives messages whose deliveries are exhausted. Unset:
	// they are dropped (and counted).
	DeadLetter *DeadLetter `json:"deadLetter,omitempty"`
	// DeliveryTimeout bounds one POST. Default 30s.
	DeliveryTimeout *metav1.Duration `json:"deliveryTimeout,omitempty"`
}

// LocalRef names an object in the referrer's namespace.
type LocalRef struct {
	Name string `json:"name"`
}

// SubscriptionRetry bounds the deliveries of one message.
type SubscriptionRetry struct {
	// MaxDeliveries counts every POST of a message, the first included.
	// Default 5.
	MaxDeliveries int32 `json:"maxDeliveries,omitempty"`
	// Backoff is the pause between attempts.
	Backoff *RetryBackoff `json:"backoff,omitempty"`
}

// RetryBackoff is an exponential back-off: base·2^(attempt-1), at most
// max, with ±20 % jitter.
type RetryBackoff struct {
	// Base defaults to 100ms.
	Base *metav1.Duration `json:"base,omitempty"`
	// Max defaults to 10s; not below Base.
	Max *metav1.Duration `json:"max,omitempty"`
}

// DeadLetter is where undeliverable messages go, on the same Broker,
// carrying the extensions deadletterreason, deliveryattempts and
// deadlettersource.
type DeadLetter struct {
	// Topic is a Kafka topic, NATS subject (no wildcards) or AMQP queue.
	Topic string `json:"topic"`
}
