package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// AccessPolicy allows or denies requests and connections to Services by
// their source (a workload identity, any authenticated peer, anyone, or an
// address range) and, for HTTP and gRPC, by what they ask for. It is
// enforced in the destination's sidecars, on their inbound listeners,
// with Envoy RBAC semantics:
//
//  1. DENY policies first: a request some DENY rule matches is refused
//     (403, gRPC PERMISSION_DENIED, or a closed TCP connection).
//  2. Then ALLOW policies: when at least one ALLOW policy targets the
//     Service, a request is allowed only if some rule of those policies
//     matches it; otherwise the mesh's spec.accessPolicy.default decides.
//  3. AUDIT policies never change the outcome: a request their rules
//     match is reported (metrics, debug log) as one a DENY policy with
//     the same rules would refuse.
//
// Policies do not conflict: every policy targeting a Service counts.
type AccessPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              AccessPolicySpec `json:"spec"`
	Status            Status           `json:"status,omitempty"`
}

// AccessAction is what an AccessPolicy does with the requests its rules
// match, or a mesh's default for the rest.
type AccessAction string

// The access actions.
const (
	AccessAllow AccessAction = "ALLOW"
	AccessDeny  AccessAction = "DENY"
	// AccessAudit is a dry run: matches are reported, never enforced.
	AccessAudit AccessAction = "AUDIT"
)

// AccessPolicySpec is an AccessPolicy's desired state.
type AccessPolicySpec struct {
	// TargetRefs name the Services (group "", kind Service) of the
	// policy's namespace whose instances enforce it. At least one.
	TargetRefs []gwv1.LocalPolicyTargetReference `json:"targetRefs"`
	// Action is ALLOW, DENY or AUDIT. Required.
	Action AccessAction `json:"action"`
	// Rules match requests; the policy applies to a request some rule
	// matches. At least one.
	Rules []AccessRule `json:"rules"`
}

// AccessRule matches a request when one of its sources (From) and one of
// its operations (To) match it.
type AccessRule struct {
	// From lists the sources. At least one.
	From []AccessSource `json:"from"`
	// To lists the operations. Empty: every request and connection.
	To []AccessOperation `json:"to,omitempty"`
}

// AccessSource is one source of requests; exactly one of Service,
// AnyAuthenticated, Any and IPBlocks is set.
type AccessSource struct {
	// Service is a workload identity's service (a Dataplane's
	// IdentityService): the peer presented the mutual-TLS certificate
	// spiffe://<trust domain of Mesh>/<Mesh>/<Service>.
	Service string `json:"service,omitempty"`
	// Mesh is the source service's mesh. Only with Service. Default: the
	// policy's mesh.
	Mesh string `json:"mesh,omitempty"`
	// AnyAuthenticated matches any peer with a verified mutual-TLS
	// certificate.
	AnyAuthenticated bool `json:"anyAuthenticated,omitempty"`
	// Any matches every peer, authenticated or not.
	Any bool `json:"any,omitempty"`
	// IPBlocks match the connection's peer address (the client's sidecar,
	// or the client itself when it connects in plaintext; X-Forwarded-For
	// is never read): canonical CIDRs such as 10.0.0.0/8 or 2001:db8::/32.
	IPBlocks []string `json:"ipBlocks,omitempty"`
}

// AccessOperation describes requests; it matches one when every field it
// sets matches (a field matches when one of its entries does). Ports apply
// to every protocol; Kafka only to Service ports of protocol kafka, NATS
// only to ports of protocol nats (an entry with either matches nothing on
// other ports); the other fields only to HTTP and gRPC. Kafka, NATS and the
// HTTP fields exclude each other.
type AccessOperation struct {
	// Ports are ports of the targeted Services (spec.ports[].port).
	Ports []int32 `json:"ports,omitempty"`
	// Methods are HTTP methods, upper case ("GET").
	Methods []string `json:"methods,omitempty"`
	// Paths match the normalized request path (without the query).
	Paths []AccessPathMatch `json:"paths,omitempty"`
	// Hosts match the Host (HTTP/1) or :authority (HTTP/2) without its
	// port, ignoring case: "api.example.com", or "*.example.com" for any
	// name ending in ".example.com".
	Hosts []string `json:"hosts,omitempty"`
	// Headers must all match.
	Headers []AccessHeaderMatch `json:"headers,omitempty"`
	// GRPCMethods match gRPC calls by service and method.
	GRPCMethods []AccessGRPCMethod `json:"grpcMethods,omitempty"`
	// Kafka matches Kafka produce and consume requests by topic. The
	// sidecar's Kafka filter enforces it per request (a refused topic
	// gets TOPIC_AUTHORIZATION_FAILED, the connection stays up).
	Kafka *AccessKafka `json:"kafka,omitempty"`
	// NATS matches NATS publishes and subscriptions by subject. The
	// sidecar's NATS filter enforces it per operation (a refused one gets
	// nats-server's -ERR 'Permissions Violation ...', the connection stays
	// up).
	NATS *AccessNATS `json:"nats,omitempty"`
}

// KafkaOperation is what a Kafka client does to a topic.
type KafkaOperation string

// The Kafka operations.
const (
	// KafkaProduce is a Produce request.
	KafkaProduce KafkaOperation = "produce"
	// KafkaConsume is a Fetch request.
	KafkaConsume KafkaOperation = "consume"
)

// AccessKafka matches Kafka requests.
type AccessKafka struct {
	// Topics are topic names ("orders"), prefixes ending in "*"
	// ("orders.*" matches "orders.created"), or "*" for every topic. At
	// least one.
	Topics []string `json:"topics"`
	// Operations are produce and consume. Empty: both. A source allowed
	// to produce to or consume from a topic may also see it in Metadata
	// answers; topics it may do neither with are hidden from it.
	Operations []KafkaOperation `json:"operations,omitempty"`
}

// NATSOperation is what a NATS client does with a subject.
type NATSOperation string

// The NATS operations.
const (
	// NATSPublish is a PUB or HPUB.
	NATSPublish NATSOperation = "publish"
	// NATSSubscribe is a SUB.
	NATSSubscribe NATSOperation = "subscribe"
)

// AccessNATS matches NATS operations.
type AccessNATS struct {
	// Subjects are NATS subject patterns: "orders.created", "orders.*"
	// ("*" is one token), "orders.>" (a final ">" is one or more tokens).
	// In an ALLOW policy an operation matches when its subject lies within
	// a pattern (a subscription to "orders.>" is not within "orders.*");
	// in DENY policies when it overlaps one (a subscription to
	// "orders.>" overlaps "orders.secret"). At least one.
	Subjects []string `json:"subjects"`
	// Operations are publish and subscribe. Empty: both.
	Operations []NATSOperation `json:"operations,omitempty"`
}

// AccessPathMatch matches the normalized path; exactly one field is set.
type AccessPathMatch struct {
	// Exact is the whole path: "/healthz".
	Exact string `json:"exact,omitempty"`
	// Prefix is a string prefix of the path: "/api/" (note that "/api"
	// also matches "/apiary").
	Prefix string `json:"prefix,omitempty"`
	// Template matches whole segments: "/users/{id}/orders" ({name} is
	// one non-empty segment), "/static/{**}" ({**}, last only, is the rest
	// of the path, possibly empty).
	Template string `json:"template,omitempty"`
	// Regex is an RE2 regular expression the whole path must match.
	Regex string `json:"regex,omitempty"`
}

// AccessHeaderMatch matches one request header; exactly one of Exact,
// Prefix, Regex and Present is set.
type AccessHeaderMatch struct {
	// Name is the header's name, matched ignoring case. Pseudo-headers
	// are not allowed: use methods, paths and hosts.
	Name   string `json:"name"`
	Exact  string `json:"exact,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	// Regex is an RE2 regular expression the whole value must match.
	Regex string `json:"regex,omitempty"`
	// Present matches when the header is there, whatever its value.
	Present bool `json:"present,omitempty"`
	// Invert matches when the match above does not (a missing header
	// then matches).
	Invert bool `json:"invert,omitempty"`
}

// AccessGRPCMethod matches gRPC calls.
type AccessGRPCMethod struct {
	// Service is the fully qualified service: "shop.v1.Cart". Required.
	Service string `json:"service"`
	// Method is the method's name: "AddItem". Empty: every method of the
	// service.
	Method string `json:"method,omitempty"`
}
