package v1alpha1_test

import (
	"testing"

	api "github.com/trellis-mesh/trellis/api/v1alpha1"
)

// msgOp replaces the first rule's operations with one entry set by f.
func msgOp(f func(*api.AccessOperation)) func(*api.AccessPolicy) {
	return func(p *api.AccessPolicy) {
		var o api.AccessOperation
		f(&o)
		p.Spec.Rules[0].To = []api.AccessOperation{o}
	}
}

func TestValidateAccessMessaging(t *testing.T) {
	runValidate(t, []vcase{
		{"kafka", access(msgOp(func(o *api.AccessOperation) {
			o.Ports = []int32{9092}
			o.Kafka = &api.AccessKafka{Topics: []string{"orders", "audit.*", "*"}, Operations: []api.KafkaOperation{"produce", "consume"}}
		})), nil},
		{"kafka without operations", access(msgOp(func(o *api.AccessOperation) {
			o.Kafka = &api.AccessKafka{Topics: []string{"orders"}}
		})), nil},
		{"nats", access(msgOp(func(o *api.AccessOperation) {
			o.NATS = &api.AccessNATS{Subjects: []string{"orders.>", "a.*.c", ">", "*"}, Operations: []api.NATSOperation{"publish"}}
		})), nil},
		{"kafka topics", access(msgOp(func(o *api.AccessOperation) {
			o.Kafka = &api.AccessKafka{Topics: []string{"", "or*ders", "orders", "orders", "a b", "**"}, Operations: []api.KafkaOperation{"write", "produce", "produce"}}
		})), []string{
			`spec.rules[0].to[0].kafka.topics[0]: Invalid value: "": must be a Kafka topic name (1-249 of a-z, A-Z, 0-9, '.', '_', '-'), optionally ending in "*" for a prefix, or "*"`,
			`spec.rules[0].to[0].kafka.topics[1]: Invalid value: "or*ders": must be a Kafka topic name (1-249 of a-z, A-Z, 0-9, '.', '_', '-'), optionally ending in "*" for a prefix, or "*"`,
			`spec.rules[0].to[0].kafka.topics[3]: Duplicate value: "orders"`,
			`spec.rules[0].to[0].kafka.topics[4]: Invalid value: "a b": must be a Kafka topic name (1-249 of a-z, A-Z, 0-9, '.', '_', '-'), optionally ending in "*" for a prefix, or "*"`,
			`spec.rules[0].to[0].kafka.topics[5]: Invalid value: "**": must be a Kafka topic name (1-249 of a-z, A-Z, 0-9, '.', '_', '-'), optionally ending in "*" for a prefix, or "*"`,
			`spec.rules[0].to[0].kafka.operations[0]: Unsupported value: "write": supported values: "produce", "consume"`,
			`spec.rules[0].to[0].kafka.operations[2]: Duplicate value: "produce"`,
		}},
		{"kafka topics required", access(msgOp(func(o *api.AccessOperation) { o.Kafka = &api.AccessKafka{} })),
			[]string{`spec.rules[0].to[0].kafka.topics: Required value: at least one topic, prefix ending in "*", or "*"`}},
		{"nats subjects", access(msgOp(func(o *api.AccessOperation) {
			o.NATS = &api.AccessNATS{Subjects: []string{"a..b", ".a", "a.>.b", "a*", "a b", "a.b", "a.b", ""}, Operations: []api.NATSOperation{"pub"}}
		})), []string{
			`spec.rules[0].to[0].nats.subjects[0]: Invalid value: "a..b": must not have an empty token (".." or a '.' at either end)`,
			`spec.rules[0].to[0].nats.subjects[1]: Invalid value: ".a": must not have an empty token (".." or a '.' at either end)`,
			`spec.rules[0].to[0].nats.subjects[2]: Invalid value: "a.>.b": ">" must be the last token`,
			`spec.rules[0].to[0].nats.subjects[3]: Invalid value: "a*": "*" and ">" must be whole tokens ("orders.*", not "orders*")`,
			`spec.rules[0].to[0].nats.subjects[4]: Invalid value: "a b": must not contain white space`,
			`spec.rules[0].to[0].nats.subjects[6]: Duplicate value: "a.b"`,
			`spec.rules[0].to[0].nats.subjects[7]: Invalid value: "": must not be empty`,
			`spec.rules[0].to[0].nats.operations[0]: Unsupported value: "pub": supported values: "publish", "subscribe"`,
		}},
		{"nats subjects required", access(msgOp(func(o *api.AccessOperation) { o.NATS = &api.AccessNATS{} })),
			[]string{`spec.rules[0].to[0].nats.subjects: Required value: at least one subject pattern ("orders.>" for a subtree)`}},
		{"kafka and nats", access(msgOp(func(o *api.AccessOperation) {
			o.Kafka = &api.AccessKafka{Topics: []string{"a"}}
			o.NATS = &api.AccessNATS{Subjects: []string{"a"}}
		})), []string{`spec.rules[0].to[0]: Invalid value: "kafka, nats": kafka and nats exclude each other: write two entries`}},
		{"kafka with HTTP fields", access(msgOp(func(o *api.AccessOperation) {
			o.Kafka = &api.AccessKafka{Topics: []string{"a"}}
			o.Methods = []string{"GET"}
		})), []string{`spec.rules[0].to[0]: Invalid value: "kafka/nats with HTTP fields": kafka and nats exclude methods, paths, hosts, headers and grpcMethods: write two entries`}},
	})
}

func i32(v int32) *int32 { return &v }

func TestValidateDataplaneKafka(t *testing.T) {
	kafkaOut := func(k *api.OutboundKafka) func(*api.Dataplane) {
		return func(d *api.Dataplane) { d.Spec.Outbound[0].Kafka = k }
	}
	runValidate(t, []vcase{
		{"broker id and port base", dataplane(func(d *api.Dataplane) {
			d.Spec.Inbound[0].KafkaBrokerID = i32(0)
			d.Spec.Outbound[0].Kafka = &api.OutboundKafka{BrokerPortBase: 19100, MaxBrokerID: 2}
		}), nil},
		{"default max broker id", dataplane(kafkaOut(&api.OutboundKafka{BrokerPortBase: 19100})), nil},
		{"broker id range", dataplane(func(d *api.Dataplane) { d.Spec.Inbound[0].KafkaBrokerID = i32(-1) }),
			[]string{"spec.inbound[0].kafkaBrokerID: Invalid value: -1: must be between 0 and 65534, inclusive"}},
		{"port base required", dataplane(kafkaOut(&api.OutboundKafka{MaxBrokerID: -1})), []string{
			"spec.outbound[0].kafka.brokerPortBase: Required value: the local port of broker id 0",
			"spec.outbound[0].kafka.maxBrokerID: Invalid value: -1: must be between 0 (default 15) and 1023, inclusive",
		}},
		{"range past 65535", dataplane(kafkaOut(&api.OutboundKafka{BrokerPortBase: 65530})),
			[]string{`spec.outbound[0].kafka: Invalid value: "65530-65545": brokerPortBase+maxBrokerID must be at most 65535`}},
		{"clash with own local port", dataplane(kafkaOut(&api.OutboundKafka{BrokerPortBase: 15001})),
			[]string{`spec.outbound[0].kafka: Invalid value: "15001-15016": broker ports clash with spec.outbound[0].localPort (15001)`}},
		{"clash with outboundHTTPPort", dataplane(kafkaOut(&api.OutboundKafka{BrokerPortBase: 14990})),
			[]string{`spec.outbound[0].kafka: Invalid value: "14990-15005": broker ports clash with spec.outboundHTTPPort (15000)`}},
		{"clash with inbound on loopback", dataplane(kafkaOut(&api.OutboundKafka{BrokerPortBase: 10000, MaxBrokerID: 3})),
			[]string{`spec.outbound[0].kafka: Invalid value: "10000-10003": broker ports clash with spec.inbound[0].port (on a loopback address) (10001)`}},
		{"no clash with inbound elsewhere", dataplane(func(d *api.Dataplane) {
			d.Spec.Address = "10.0.0.1"
			d.Spec.Outbound[0].Kafka = &api.OutboundKafka{BrokerPortBase: 10000, MaxBrokerID: 3}
		}), nil},
		{"clash with bridge port", dataplane(func(d *api.Dataplane) {
			d.Spec.Bridge = &api.DataplaneBridge{Port: 19105}
			d.Spec.Outbound[0].Kafka = &api.OutboundKafka{BrokerPortBase: 19100}
		}), []string{`spec.outbound[0].kafka: Invalid value: "19100-19115": broker ports clash with spec.bridge.port (19105)`}},
		{"ranges overlap", dataplane(func(d *api.Dataplane) {
			d.Spec.Outbound[0].Kafka = &api.OutboundKafka{BrokerPortBase: 19100}
			d.Spec.Outbound = append(d.Spec.Outbound, api.Outbound{Service: "logs", LocalPort: 15002, Kafka: &api.OutboundKafka{BrokerPortBase: 19110, MaxBrokerID: 3}})
		}), []string{`spec.outbound[1].kafka: Invalid value: "19110-19113": broker ports overlap spec.outbound[0].kafka (19100-19115)`}},
	})
}
