package v1alpha1

import (
	"net"
	"net/netip"
	"strconv"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// DefaultTracingSampling is the percentage of requests a sidecar starts a
// trace for when a Mesh's spec.tracing.sampling is not set.
const DefaultTracingSampling = 1.0

// MeshTracing makes every sidecar of a mesh take part in distributed
// traces: it starts a trace for Sampling percent of the requests that
// arrive without a sampling decision, records a server span per request
// and a client span per upstream attempt, and sends them over OTLP/gRPC to
// Collector. Spans carry the sidecar's identity service as service.name
// and the attributes trellis.mesh and trellis.service.
type MeshTracing struct {
	// Collector is "host:port" of an OpenTelemetry (OTLP/gRPC) receiver,
	// such as an OpenTelemetry Collector's port 4317, reached by every
	// sidecar of the mesh. host is an IP address or a DNS name (resolved
	// by each sidecar when its configuration is applied). Plaintext gRPC:
	// put the collector on a network you trust. Required.
	Collector string `json:"collector"`
	// Sampling is the percentage (0 to 100, fractions allowed) of
	// requests without an incoming sampling decision that start a trace.
	// A decision that comes with the request (a W3C traceparent or B3
	// header) always wins, so 0 records only traces started upstream.
	// Default: 1 (DefaultTracingSampling).
	Sampling *float64 `json:"sampling,omitempty"`
	// Messaging makes sidecars put trace context on the messages their
	// applications publish, so traces follow messages across
	// asynchronous hops. Nil: messages pass as they are.
	Messaging *MessagingTracing `json:"messaging,omitempty"`
}

// MessagingTracing chooses the broker protocols on whose publishes the
// caller's sidecar injects a W3C traceparent (a new trace id and parent
// id; sampled per the mesh's Sampling) where the message has none. It acts
// on the publisher's outbound to Service ports of protocol nats or kafka,
// never on consumers or brokers' sidecars.
type MessagingTracing struct {
	// NATS turns a header-less PUB into an HPUB carrying a traceparent
	// header (the server must support headers, as NATS 2.2+ does). An
	// HPUB keeps its headers unchanged. Default false.
	NATS bool `json:"nats,omitempty"`
	// Kafka adds a traceparent record header to every record of a Produce
	// request that has none, re-encoding its record batch (lengths and
	// CRC-32C). Compressed batches pass unchanged. Default false: a
	// producer that signs or checksums its records end to end would see
	// them altered. See docs/messaging.md, "Trace context".
	Kafka bool `json:"kafka,omitempty"`
}

// MessagingTraceOf returns whether a mesh with tracing t injects trace
// context into NATS and Kafka publishes.
func MessagingTraceOf(t *MeshTracing) (nats, kafka bool) {
	if t == nil || t.Messaging == nil {
		return false, false
	}
	return t.Messaging.NATS, t.Messaging.Kafka
}

// TracingSamplingOf returns t's sampling percentage, or
// DefaultTracingSampling when it is not set.
func TracingSamplingOf(t *MeshTracing) float64 {
	if t == nil || t.Sampling == nil {
		return DefaultTracingSampling
	}
	return *t.Sampling
}

func defaultMeshTracing(t *MeshTracing) {
	if t != nil && t.Sampling == nil {
		s := DefaultTracingSampling
		t.Sampling = &s
	}
}

func validateMeshTracing(t *MeshTracing, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if t.Sampling != nil {
		errs = append(errs, percent(p.Child("sampling"), *t.Sampling)...)
	}
	cp := p.Child("collector")
	if t.Collector == "" {
		return append(errs, field.Required(cp, `"host:port" of an OTLP/gRPC receiver`))
	}
	host, port, err := net.SplitHostPort(t.Collector)
	if err != nil {
		return append(errs, field.Invalid(cp, t.Collector, `must be "host:port" (an IPv6 address in brackets)`))
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		errs = append(errs, field.Invalid(cp, t.Collector, "the port must be between 1 and 65535"))
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		if addr.Zone() != "" || addr.IsUnspecified() {
			errs = append(errs, field.Invalid(cp, t.Collector, "the host must be a routable IP address or a DNS name"))
		}
		return errs
	}
	if msgs := validation.IsDNS1123Subdomain(host); len(msgs) > 0 {
		errs = append(errs, field.Invalid(cp, t.Collector, "the host must be an IP address or a DNS name: "+msgs[0]))
	}
	return errs
}
