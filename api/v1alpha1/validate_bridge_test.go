package v1alpha1_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	api "github.com/trellis-mesh/trellis/api/v1alpha1"
)

const brokerYAML = `apiVersion: trellis.dev/v1alpha1
kind: Broker
metadata: {name: events}
spec:
  type: nats
  addresses: [nats://nats.internal:4222, "10.0.0.9:4222"]
  nats: {jetStream: true}
  credentials: {usernameFile: /etc/trellis/nats/user, passwordFile: /etc/trellis/nats/password}
  tls: {caFile: /etc/trellis/nats/ca.pem}
`

const subscriptionYAML = `apiVersion: trellis.dev/v1alpha1
kind: Subscription
metadata: {name: billing-orders}
spec:
  brokerRef: {name: events}
  topic: orders.created
  consumerGroup: billing
  targetRef: {name: api}
  path: /events/orders
  concurrency: 4
  retry: {maxDeliveries: 5, backoff: {base: 200ms, max: 5s}}
  deadLetter: {topic: orders.dead}
  deliveryTimeout: 10s
`

func TestValidateBridgeKinds(t *testing.T) {
	tests := []struct {
		name string
		obj  api.Object
		want []string // substrings, one per violation, in order
	}{
		{"broker valid", build(brokerYAML, func(*api.Broker) {}), nil},
		{"subscription valid", build(subscriptionYAML, func(*api.Subscription) {}), nil},
		{"broker type and addresses", build(brokerYAML, func(b *api.Broker) { b.Spec.Type = "mqtt"; b.Spec.Addresses = nil }),
			[]string{`spec.type: Unsupported value: "mqtt"`, "spec.addresses: Required value", "spec.nats: Forbidden: only for type nats"}},
		{"amqp address", build(brokerYAML, func(b *api.Broker) {
			b.Spec.Type = api.BrokerAMQP
			b.Spec.NATS = nil
			b.Spec.Addresses = []string{"rabbit:5672"}
		}),
			[]string{`spec.addresses[0]: Invalid value: "rabbit:5672": must be an amqp:// or amqps:// URL`}},
		{"kafka address", build(brokerYAML, func(b *api.Broker) {
			b.Spec.Type = api.BrokerKafka
			b.Spec.NATS = nil
			b.Spec.Addresses = []string{"kafka"}
		}),
			[]string{`spec.addresses[0]: Invalid value: "kafka": must be host:port`}},
		{"credentials", build(brokerYAML, func(b *api.Broker) { b.Spec.Credentials = &api.BrokerCredentials{UsernameFile: "user"} }),
			[]string{`spec.credentials.usernameFile: Invalid value: "user": must be an absolute path`, "spec.credentials.passwordFile: Required value"}},
		{"tls pair", build(brokerYAML, func(b *api.Broker) { b.Spec.TLS.CertFile = "/c.pem" }),
			[]string{"spec.tls.keyFile: Required value: certFile and keyFile go together"}},
		{"subscription refs and topic", build(subscriptionYAML, func(s *api.Subscription) {
			s.Spec.BrokerRef.Name, s.Spec.TargetRef.Name, s.Spec.Topic = "", "", ""
		}), []string{"spec.brokerRef.name: Required value", "spec.targetRef.name: Required value", "spec.topic: Required value"}},
		{"dead letter", build(subscriptionYAML, func(s *api.Subscription) { s.Spec.DeadLetter.Topic = "orders.created" }),
			[]string{`spec.deadLetter.topic: Invalid value: "orders.created": must differ from spec.topic`}},
		{"dead letter wildcard", build(subscriptionYAML, func(s *api.Subscription) { s.Spec.DeadLetter.Topic = "orders.>" }),
			[]string{`spec.deadLetter.topic: Invalid value: "orders.>": must not contain wildcards`}},
		{"numbers", build(subscriptionYAML, func(s *api.Subscription) {
			s.Spec.Concurrency, s.Spec.Retry.MaxDeliveries, s.Spec.Port, s.Spec.Path = -1, 5000, 70000, "events"
		}), []string{"spec.port: Invalid value: 70000", `spec.path: Invalid value: "events"`, "spec.concurrency: Invalid value: -1", "spec.retry.maxDeliveries: Invalid value: 5000"}},
		{"backoff order", build(subscriptionYAML, func(s *api.Subscription) { s.Spec.Retry.Backoff.Max.Duration /= 100 }),
			[]string{`spec.retry.backoff.max: Invalid value: "50ms": must not be below base (200ms)`}},
		{"group", build(subscriptionYAML, func(s *api.Subscription) { s.Spec.ConsumerGroup = "a.b" }),
			[]string{`spec.consumerGroup: Invalid value: "a.b"`}},
		{"dataplane bridge port", build(`apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: web-1}
spec: {address: 10.0.0.1, bridge: {port: 0}}
`, func(*api.Dataplane) {}), []string{"spec.bridge.port: Invalid value: 0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			errs := api.Validate(tc.obj)
			if len(errs) != len(tc.want) {
				t.Fatalf("got %d violations, want %d: %v", len(errs), len(tc.want), errs)
			}
			for i, e := range errs {
				if !strings.Contains(e.Error(), tc.want[i]) {
					t.Errorf("violation %d = %q, want it to contain %q", i, e.Error(), tc.want[i])
				}
			}
		})
	}
}

func TestConditionsSubscription(t *testing.T) {
	w := world(t, conditionsWorld+"---\n"+brokerYAML+`---
apiVersion: trellis.dev/v1alpha1
kind: Broker
metadata: {name: kafka}
spec: {type: kafka, addresses: ["kafka:9092"]}
`)
	tests := []struct {
		name string
		mut  func(*api.Subscription)
		want []string
	}{
		{"resolved", func(*api.Subscription) {}, []string{"Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"}},
		{"missing broker and service", func(s *api.Subscription) { s.Spec.BrokerRef.Name = "nope"; s.Spec.TargetRef.Name = "ghost" },
			[]string{"Accepted=True/Accepted", "ResolvedRefs=False/BackendNotFound: spec.brokerRef: Broker default/nope not found; spec.targetRef: Service default/ghost not found"}},
		{"service port", func(s *api.Subscription) { s.Spec.Port = 9999 },
			[]string{"Accepted=True/Accepted", "ResolvedRefs=False/BackendNotFound: spec.targetRef: Service default/api has no port 9999"}},
		{"topic the broker refuses", func(s *api.Subscription) { s.Spec.BrokerRef.Name = "kafka"; s.Spec.Topic = "orders/created" },
			[]string{"Accepted=True/Accepted", `ResolvedRefs=False/UnsupportedValue: spec.topic: "orders/created": not a Kafka topic name (letters, digits, '.', '_', '-')`}},
		{"invalid", func(s *api.Subscription) { s.Spec.Topic = "" }, []string{"Accepted=False/Invalid: spec.topic: Required value"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obj := build(subscriptionYAML, tc.mut)
			api.Default(obj)
			if diff := cmp.Diff(tc.want, cond(api.Conditions(obj, w))); diff != "" {
				t.Fatalf("conditions (-want +got):\n%s", diff)
			}
		})
	}
	b := build(brokerYAML, func(*api.Broker) {})
	api.Default(b)
	if diff := cmp.Diff([]string{"Accepted=True/Accepted"}, cond(api.Conditions(b, w))); diff != "" {
		t.Errorf("broker conditions (-want +got):\n%s", diff)
	}
}
