package translator

import (
	"slices"

	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	kafkav3 "github.com/envoyproxy/go-control-plane/contrib/envoy/extensions/filters/network/kafka_broker/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

// The protocol-aware network filters of broker ports (docs/messaging.md,
// "Configured by the mesh"). A Service port of protocol nats or kafka
// gets its protocol's filter right before tcp_proxy, on the caller's
// outbound listener and on the inbound listener of every sidecar serving
// it, so that both sides count the traffic: the caller's side what it
// sent and received, the server's side what reached the broker from every
// caller. The filters' stat_prefix names the side and the service port,
// "outbound:<namespace>/<name>:<port>" or "inbound:<namespace>/<name>:<port>";
// tcp_proxy keeps its own stat prefix (the mesh's telemetry reads it).
//
// Without policies the filters observe and allow everything. Where
// AccessPolicies name Kafka topics or NATS subjects, the inbound's filter
// carries the per-request policy built in access_messaging.go (after the
// RBAC network filters of access.go, which decide whole connections); a
// caller's outbound to a kafka port with spec.outbound[].kafka gets the
// per-broker listeners and the id-based broker address rewrite of
// messaging_kafka.go. With the Mesh's spec.tracing.messaging, the
// caller's outbound (the publishing side, never an inbound) injects W3C
// traceparent: the NATS filter's inject_traceparent, or a kafka_trace
// filter after kafka_broker.
const (
	natsFilterName  = "trellis.filters.network.nats"
	natsTypeURL     = "type.googleapis.com/trellis.filters.network.nats.v1.Nats"
	kafkaFilterName = "envoy.filters.network.kafka_broker"
	kafkaTraceName  = "trellis.filters.network.kafka_trace"
	// kafkaTraceTypeURL is internal/proxy/kafkabroker.TraceTypeURL.
	kafkaTraceTypeURL = "type.googleapis.com/trellis.filters.network.kafka.v1.Trace"
)

// messagingKey caches, in a service's cache, the protocol filter of one of
// its ports on one side. The filter is a function of the Service's key,
// the port and the port's protocol; the key's service carries the first
// two and its spec the third, and pieces under this key are not carried
// over to a new Index (update.go), so a changed protocol rebuilds it.
type messagingKey struct {
	port    int32
	inbound bool
}

// isMessaging reports whether p has a protocol-aware filter.
func isMessaging(p v1alpha1.Protocol) bool {
	return p == v1alpha1.ProtocolNATS || p == v1alpha1.ProtocolKafka
}

// messagingStatPrefix is the stat_prefix of the protocol filter of port of
// the Service k on one side.
func messagingStatPrefix(k ServiceKey, port int32, inbound bool) string {
	if inbound {
		return "inbound:" + ClusterName(k, port)
	}
	return "outbound:" + ClusterName(k, port)
}

// messagingFilters returns the protocol filters of port of s on one side
// followed by next (tcp_proxy), or next alone when the port's protocol has
// no filter (or s is nil). On an inbound, acc's protocol filters (with a
// topic or subject policy, access_messaging.go) take the place of the
// plain one. tr is the mesh's tracing: on an outbound, its messaging
// settings turn on traceparent injection.
func messagingFilters(s *service, port int32, inbound bool, next *listenerv3.Filter, acc *access, tr *meshTracing) []*listenerv3.Filter {
	if s == nil || !isMessaging(protocolOf(portOf(s.spec, port))) {
		return []*listenerv3.Filter{next}
	}
	if acc != nil && len(acc.msg) > 0 {
		return append(slices.Clone(acc.msg), next)
	}
	return append(slices.Clone(messagingFilter(s, port, inbound, tr)), next)
}

// messagingFilter returns the protocol filters of port of s on one side,
// built once per Index (a Mesh change, which may change tr, makes a new
// one: update.go).
func messagingFilter(s *service, port int32, inbound bool, tr *meshTracing) []*listenerv3.Filter {
	k := messagingKey{port, inbound}
	if !uncached {
		if v, ok := s.cache.Load(k); ok {
			return v.([]*listenerv3.Filter)
		}
	}
	var natsTrace, kafkaTrace bool
	if !inbound && tr != nil {
		natsTrace, kafkaTrace = v1alpha1.MessagingTraceOf(tr.spec)
	}
	prefix := messagingStatPrefix(s.key, port, inbound)
	var fs []*listenerv3.Filter
	if protocolOf(portOf(s.spec, port)) == v1alpha1.ProtocolNATS {
		fs = []*listenerv3.Filter{natsFilter(prefix, natsTrace)}
	} else {
		fs = []*listenerv3.Filter{kafkaFilter(prefix)}
		if kafkaTrace {
			fs = append(fs, kafkaTraceFilter(tr.sampling))
		}
	}
	if uncached {
		return fs
	}
	v, _ := s.cache.LoadOrStore(k, fs)
	return v.([]*listenerv3.Filter)
}

// natsFilter is Trellis' NATS filter without a policy: it observes and
// allows everything, and with inject turns PUBs into HPUBs carrying a
// traceparent.
func natsFilter(statPrefix string, inject bool) *listenerv3.Filter {
	fields := map[string]*structpb.Value{"stat_prefix": structpb.NewStringValue(statPrefix)}
	if inject {
		fields["inject_traceparent"] = structpb.NewBoolValue(true)
	}
	ts := &xdstypev3.TypedStruct{TypeUrl: natsTypeURL, Value: &structpb.Struct{Fields: fields}}
	return &listenerv3.Filter{Name: natsFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(ts)}}
}

// kafkaTraceFilter is Trellis' kafka_trace filter injecting traceparent
// record headers, sampled at the mesh's percentage.
func kafkaTraceFilter(sampling float64) *listenerv3.Filter {
	ts := &xdstypev3.TypedStruct{TypeUrl: kafkaTraceTypeURL, Value: &structpb.Struct{Fields: map[string]*structpb.Value{
		"inject_traceparent": structpb.NewBoolValue(true),
		"sampling":           structpb.NewNumberValue(sampling),
	}}}
	return &listenerv3.Filter{Name: kafkaTraceName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(ts)}}
}

// kafkaFilter is Envoy's Kafka broker filter without an address rewrite:
// per-API and per-topic metrics only.
func kafkaFilter(statPrefix string) *listenerv3.Filter {
	kb := &kafkav3.KafkaBroker{StatPrefix: statPrefix}
	return &listenerv3.Filter{Name: kafkaFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(kb)}}
}
