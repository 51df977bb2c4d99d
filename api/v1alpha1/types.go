package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Group, Version and APIVersion name this package's API group.
const (
	Group      = "trellis.dev"
	Version    = "v1alpha1"
	APIVersion = Group + "/" + Version
)

// MeshLabel names the label that puts a resource in a mesh.
const MeshLabel = "trellis.dev/mesh"

// DefaultMesh is the mesh of a resource without a MeshLabel.
const DefaultMesh = "default"

// DefaultNamespace is the namespace of a resource that names none.
const DefaultNamespace = "default"

// Mesh is a named, isolated mesh: its own trust domain (and, with the identity
// work, its own CA) and its own defaults. Mesh is cluster-scoped.
type Mesh struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              MeshSpec `json:"spec"`
	Status            Status   `json:"status,omitempty"`
}

// MeshSpec is a Mesh's desired state.
type MeshSpec struct {
	// TrustDomain is the SPIFFE trust domain of the mesh's identities.
	// Default: "<mesh name>.trellis.local".
	TrustDomain string `json:"trustDomain,omitempty"`
	// Defaults apply to every Service of the mesh unless a TrafficPolicy
	// targeting the Service (or a route) says otherwise, field by field.
	Defaults *PolicySpec `json:"defaults,omitempty"`
	// AccessLog turns on access logging on every proxy of the mesh.
	AccessLog *AccessLog `json:"accessLog,omitempty"`
	// MTLS is mutual TLS between the mesh's sidecars. Default (a Mesh
	// object that leaves it out): mode STRICT, certificates of 24 h. The
	// implicit "default" mesh, without a Mesh object, has mTLS DISABLED
	// (see MTLSModeOf).
	MTLS *MTLS `json:"mtls,omitempty"`
	// CA says where the mesh's certificate authority comes from. Default:
	// a root the control plane generates (builtin).
	CA *MeshCA `json:"ca,omitempty"`
	// AccessPolicy holds the mesh-wide access-policy settings. Default:
	// ALLOW what no AccessPolicy decides.
	AccessPolicy *MeshAccessPolicy `json:"accessPolicy,omitempty"`
	// Tracing makes every sidecar of the mesh start traces and send spans
	// to a collector. Default: none (sidecars pass trace headers through
	// and record nothing).
	Tracing *MeshTracing `json:"tracing,omitempty"`
	// Tap tunes `trellis tap` on the mesh's sidecars (header redaction).
	// Default: only the built-in headers are redacted.
	Tap *MeshTap `json:"tap,omitempty"`
}

// MTLSMode says which inbound connections a mesh's sidecars accept.
type MTLSMode string

// The mTLS modes.
const (
	// MTLSStrict accepts only mutual TLS with a certificate of the mesh
	// on inbound ports: a plaintext client is refused.
	MTLSStrict MTLSMode = "STRICT"
	// MTLSPermissive accepts mutual TLS and plaintext on inbound ports
	// (for migration). Sidecars still call each other over mutual TLS.
	MTLSPermissive MTLSMode = "PERMISSIVE"
	// MTLSDisabled is plaintext between sidecars, with no identities.
	MTLSDisabled MTLSMode = "DISABLED"
)

// MTLS configures mutual TLS between the mesh's sidecars.
type MTLS struct {
	// Mode defaults to STRICT.
	Mode MTLSMode `json:"mode,omitempty"`
	// CertificateTTL is the lifetime of the workload certificates the
	// mesh's CA issues; proxies renew at about half of it. Between 5m
	// and 720h (30 days). Default: 24h.
	CertificateTTL *metav1.Duration `json:"certificateTTL,omitempty"`
}

// CAType names where a mesh's CA comes from.
type CAType string

// The CA types.
const (
	// CABuiltin: the control plane generates a self-signed root for the
	// mesh on first use and keeps it in its store.
	CABuiltin CAType = "builtin"
	// CAProvided: the control plane signs with a CA certificate and key
	// read from files on its host (a root or an intermediate of your PKI).
	CAProvided CAType = "provided"
)

// MeshCA says where a mesh's certificate authority comes from.
type MeshCA struct {
	// Type defaults to builtin.
	Type CAType `json:"type,omitempty"`
	// Provided names the files of a provided CA. Required with type
	// provided, forbidden otherwise.
	Provided *ProvidedCA `json:"provided,omitempty"`
}

// ProvidedCA names PEM files on the control plane's host.
type ProvidedCA struct {
	// CertFile holds the CA certificate Trellis signs with first, then
	// its issuers. An absolute path.
	CertFile string `json:"certFile"`
	// KeyFile holds the first certificate's private key. An absolute
	// path.
	KeyFile string `json:"keyFile"`
}

// MeshAccessPolicy holds a mesh's access-policy settings.
type MeshAccessPolicy struct {
	// Default decides the requests to a Service that no ALLOW
	// AccessPolicy targets and no DENY policy denies: ALLOW or DENY.
	// Default: ALLOW (compatible with meshes without policies). STRICT
	// mTLS with DENY is the recommended production setting.
	Default AccessAction `json:"default,omitempty"`
}

// AccessLog configures proxies' access logs.
type AccessLog struct {
	// Path is a file path on the proxy's host, or "/dev/stdout".
	Path string `json:"path"`
}

// Protocol is the application protocol of a Service port.
type Protocol string

// The protocols a Service port may declare.
const (
	ProtocolHTTP  Protocol = "http"
	ProtocolHTTP2 Protocol = "http2"
	ProtocolGRPC  Protocol = "grpc"
	ProtocolTCP   Protocol = "tcp"
	ProtocolKafka Protocol = "kafka"
	ProtocolNATS  Protocol = "nats"
)

// Service is a logical name with ports that selects instances (Dataplanes) by
// labels, as a Kubernetes Service selects pods. A version subset is just
// another Service whose selector adds the version label.
type Service struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              ServiceSpec `json:"spec"`
	Status            Status      `json:"status,omitempty"`
}

// ServiceSpec is a Service's desired state.
type ServiceSpec struct {
	// Selector picks the Dataplanes of the same mesh whose labels contain
	// every pair. An empty selector selects nothing.
	Selector map[string]string `json:"selector"`
	// Ports the Service offers. At least one.
	Ports []ServicePort `json:"ports"`
}

// ServicePort is one port of a Service.
type ServicePort struct {
	// Name is optional with a single port and required with several.
	Name string `json:"name,omitempty"`
	// Port is the service port clients address.
	Port int32 `json:"port"`
	// Protocol defaults to http.
	Protocol Protocol `json:"protocol,omitempty"`
}

// Dataplane is one proxy and the application instance it fronts.
type Dataplane struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              DataplaneSpec   `json:"spec"`
	Status            DataplaneStatus `json:"status,omitempty"`
}

// DataplaneSpec is a Dataplane's desired state. The instance's labels are the
// Dataplane's metadata.labels: Services select on them.
type DataplaneSpec struct {
	// Address is the IP other proxies reach this proxy's inbound ports on.
	Address string `json:"address"`
	// Inbound lists the service ports this instance serves.
	Inbound []Inbound `json:"inbound,omitempty"`
	// Outbound lists the upstream services the application calls, each on
	// a local port of the proxy.
	Outbound []Outbound `json:"outbound,omitempty"`
	// OutboundHTTPPort, when set, is one local HTTP port on which the proxy
	// routes by Host ("reviews", "reviews.mesh", "reviews:9080") to every
	// HTTP service of the mesh the Dataplane may call.
	OutboundHTTPPort int32 `json:"outboundHTTPPort,omitempty"`
	// Locality is where the instance runs; load balancing prefers near
	// endpoints.
	Locality *Locality `json:"locality,omitempty"`
	// Identity is the service whose workload identity the instance has
	// (spiffe://<trust domain>/<mesh>/<identity>): the service its
	// dataplane token is issued for, and the name AccessPolicy sources
	// use. A DNS-1123 label. Default: the label "app", else
	// metadata.name (see IdentityService); Default does not write it.
	Identity string `json:"identity,omitempty"`
	// Bridge, when set, opts the instance into the HTTP bridge to message
	// brokers (docs/bridge.md): the application publishes on
	// 127.0.0.1:<bridge.port> and the sidecar delivers the Subscriptions
	// targeting its Services to the inbound's application port.
	Bridge *DataplaneBridge `json:"bridge,omitempty"`
}

// DataplaneBridge is a Dataplane's HTTP bridge opt-in.
type DataplaneBridge struct {
	// Port is the local port (on 127.0.0.1) the application publishes to.
	// Required, 1-65535.
	Port int32 `json:"port"`
}

// Inbound is one service port served by the instance.
type Inbound struct {
	// Port is where the proxy listens on Address for mesh traffic.
	Port int32 `json:"port"`
	// ServicePort is the Service port this inbound serves. Default: Port.
	ServicePort int32 `json:"servicePort,omitempty"`
	// AppPort is the application's port. Required.
	AppPort int32 `json:"appPort"`
	// AppAddress is the application's address. Default: 127.0.0.1.
	AppAddress string `json:"appAddress,omitempty"`
	// KafkaBrokerID is the id (broker.id / node.id) of the Kafka broker
	// the application is, for an inbound serving a Service port of
	// protocol kafka: callers reach this instance as that broker through
	// the port OutboundKafka assigns it (docs/messaging.md). 0 to 65535.
	// Unset: callers reach the instance only through the bootstrap port.
	KafkaBrokerID *int32 `json:"kafkaBrokerID,omitempty"`
}

// Outbound is one upstream the application calls through the proxy.
type Outbound struct {
	// Service names the upstream Service (in the Dataplane's namespace
	// unless Namespace says otherwise).
	Service   string `json:"service"`
	Namespace string `json:"namespace,omitempty"`
	// Port is the Service port. Optional when the Service has one port.
	Port int32 `json:"port,omitempty"`
	// LocalPort is the port on 127.0.0.1 the application calls.
	LocalPort int32 `json:"localPort"`
	// Kafka, for a Service port of protocol kafka, serves every broker of
	// the Service on a local port of its own and rewrites the broker
	// addresses in the responses to them, so that the client reaches
	// every broker through the proxy (docs/messaging.md). Unset:
	// LocalPort is only a bootstrap address.
	Kafka *OutboundKafka `json:"kafka,omitempty"`
}

// OutboundKafka assigns local ports to the brokers of a Kafka Service: the
// broker with id b (Inbound.KafkaBrokerID) is served on
// 127.0.0.1:BrokerPortBase+b.
type OutboundKafka struct {
	// BrokerPortBase is the local port of broker id 0. Required.
	BrokerPortBase int32 `json:"brokerPortBase"`
	// MaxBrokerID is the highest broker id served: the ports
	// BrokerPortBase to BrokerPortBase+MaxBrokerID are reserved. Brokers
	// with a higher id get no port. Default: 15.
	MaxBrokerID int32 `json:"maxBrokerID,omitempty"`
}

// Locality is a region and zone.
type Locality struct {
	Region string `json:"region,omitempty"`
	Zone   string `json:"zone,omitempty"`
}

// DataplaneStatus is what the control plane knows of a Dataplane's proxy.
type DataplaneStatus struct {
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Connected is true while the proxy holds an xDS stream.
	Connected bool `json:"connected,omitempty"`
	// ControlPlane names the control-plane replica the proxy is connected to.
	ControlPlane string `json:"controlPlane,omitempty"`
	// LastSeen is when the proxy's stream was last open.
	LastSeen *metav1.Time `json:"lastSeen,omitempty"`
	// XDS holds, per resource type URL, the last version the proxy
	// acknowledged and the last rejection.
	XDS []XDSTypeStatus `json:"xds,omitempty"`
}

// XDSTypeStatus is a proxy's answer for one xDS resource type.
type XDSTypeStatus struct {
	TypeURL      string       `json:"typeURL"`
	AckedVersion string       `json:"ackedVersion,omitempty"`
	NackVersion  string       `json:"nackVersion,omitempty"`
	NackError    string       `json:"nackError,omitempty"`
	NackTime     *metav1.Time `json:"nackTime,omitempty"`
}

// Status is the Gateway API-style status of Trellis' kinds: conditions, of
// which "Accepted" says whether the resource is in effect and why not.
type Status struct {
	ObservedGeneration int64              `json:"observedGeneration,omitempty"`
	Conditions         []metav1.Condition `json:"conditions,omitempty"`
}

// TrafficPolicy attaches backend policy to Services or routes (Gateway API's
// policy-attachment pattern). Fields left out fall back to a less specific
// policy: route, then Service, then the Mesh defaults, then Trellis' own.
type TrafficPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              TrafficPolicySpec `json:"spec"`
	Status            gwv1.PolicyStatus `json:"status,omitempty"`
}

// TrafficPolicySpec is a TrafficPolicy's desired state.
type TrafficPolicySpec struct {
	// TargetRefs name the Services (group "", kind Service) or routes
	// (group gateway.networking.k8s.io, kind HTTPRoute/GRPCRoute/TCPRoute)
	// in the policy's namespace that the policy applies to.
	TargetRefs []gwv1.LocalPolicyTargetReference `json:"targetRefs"`
	PolicySpec `json:",inline"`
}

// PolicySpec is the policy itself, shared by TrafficPolicy and Mesh defaults.
type PolicySpec struct {
	LoadBalancer     *LoadBalancer     `json:"loadBalancer,omitempty"`
	ConnectionLimits *ConnectionLimits `json:"connectionLimits,omitempty"`
	OutlierDetection *OutlierDetection `json:"outlierDetection,omitempty"`
	HealthCheck      *HealthCheck      `json:"healthCheck,omitempty"`
	Retry            *Retry            `json:"retry,omitempty"`
	Timeouts         *Timeouts         `json:"timeouts,omitempty"`
	RateLimit        *RateLimit        `json:"rateLimit,omitempty"`
	FaultInjection   *FaultInjection   `json:"faultInjection,omitempty"`
}

// LoadBalancerType names a load-balancing algorithm.
type LoadBalancerType string

// The load-balancing algorithms.
const (
	LoadBalancerRoundRobin   LoadBalancerType = "RoundRobin"
	LoadBalancerLeastRequest LoadBalancerType = "LeastRequest"
	LoadBalancerRandom       LoadBalancerType = "Random"
	LoadBalancerRingHash     LoadBalancerType = "RingHash"
	LoadBalancerMaglev       LoadBalancerType = "Maglev"
	LoadBalancerPeakEWMA     LoadBalancerType = "PeakEWMA"
)

// LoadBalancer picks the algorithm and, for the hashing ones, the hash key.
type LoadBalancer struct {
	// Type defaults to PeakEWMA for mesh traffic.
	Type LoadBalancerType `json:"type,omitempty"`
	// HashOn lists the hash keys for RingHash and Maglev, tried in order.
	HashOn []HashKey `json:"hashOn,omitempty"`
}

// HashKey is one source of a consistent-hash key; exactly one field is set.
type HashKey struct {
	Header     string `json:"header,omitempty"`
	Cookie     string `json:"cookie,omitempty"`
	QueryParam string `json:"queryParam,omitempty"`
	SourceIP   bool   `json:"sourceIP,omitempty"`
}

// ConnectionLimits is circuit breaking: limits per upstream Service.
type ConnectionLimits struct {
	MaxConnections     *uint32 `json:"maxConnections,omitempty"`
	MaxPendingRequests *uint32 `json:"maxPendingRequests,omitempty"`
	MaxRequests        *uint32 `json:"maxRequests,omitempty"`
	MaxRetries         *uint32 `json:"maxRetries,omitempty"`
}

// OutlierDetection ejects misbehaving endpoints.
type OutlierDetection struct {
	Consecutive5xx             *uint32          `json:"consecutive5xx,omitempty"`
	ConsecutiveGatewayFailure  *uint32          `json:"consecutiveGatewayFailure,omitempty"`
	ConsecutiveLocalOriginFail *uint32          `json:"consecutiveLocalOriginFailure,omitempty"`
	Interval                   *metav1.Duration `json:"interval,omitempty"`
	BaseEjectionTime           *metav1.Duration `json:"baseEjectionTime,omitempty"`
	MaxEjectionTime            *metav1.Duration `json:"maxEjectionTime,omitempty"`
	MaxEjectionPercent         *uint32          `json:"maxEjectionPercent,omitempty"`
	// FailurePercentageThreshold ejects endpoints whose failure percentage
	// exceeds it (with at least 5 requests per interval).
	FailurePercentageThreshold *uint32 `json:"failurePercentageThreshold,omitempty"`
}

// HealthCheck is an active health check of every endpoint of the Service.
type HealthCheck struct {
	Interval           *metav1.Duration `json:"interval,omitempty"`
	Timeout            *metav1.Duration `json:"timeout,omitempty"`
	UnhealthyThreshold *uint32          `json:"unhealthyThreshold,omitempty"`
	HealthyThreshold   *uint32          `json:"healthyThreshold,omitempty"`
	// Exactly one of HTTP, TCP and GRPC.
	HTTP *HTTPHealthCheck `json:"http,omitempty"`
	TCP  *TCPHealthCheck  `json:"tcp,omitempty"`
	GRPC *GRPCHealthCheck `json:"grpc,omitempty"`
}

// HTTPHealthCheck probes a path.
type HTTPHealthCheck struct {
	Path string `json:"path"`
	// ExpectedStatuses defaults to [200].
	ExpectedStatuses []int32 `json:"expectedStatuses,omitempty"`
}

// TCPHealthCheck connects, optionally sends and expects bytes.
type TCPHealthCheck struct {
	Send    string `json:"send,omitempty"`
	Receive string `json:"receive,omitempty"`
}

// GRPCHealthCheck uses the gRPC health checking protocol.
type GRPCHealthCheck struct {
	ServiceName string `json:"serviceName,omitempty"`
}

// Retry is the retry policy with its budget.
type Retry struct {
	// Attempts is the number of retries (not counting the first try).
	Attempts *uint32 `json:"attempts,omitempty"`
	// On lists Envoy retry_on conditions, e.g. "5xx", "connect-failure",
	// "unavailable". Default: "connect-failure,refused-stream,unavailable,
	// cancelled,retriable-status-codes" with status 503.
	On []string `json:"on,omitempty"`
	// StatusCodes are the retriable-status-codes.
	StatusCodes   []int32          `json:"statusCodes,omitempty"`
	PerTryTimeout *metav1.Duration `json:"perTryTimeout,omitempty"`
	BackOff       *BackOff         `json:"backOff,omitempty"`
	// Budget caps retries at a share of active requests so a failing
	// upstream never sees a retry storm. Default: 20% with a floor of 3.
	Budget *RetryBudget `json:"budget,omitempty"`
}

// BackOff is a retry back-off with full jitter.
type BackOff struct {
	BaseInterval *metav1.Duration `json:"baseInterval,omitempty"`
	MaxInterval  *metav1.Duration `json:"maxInterval,omitempty"`
}

// RetryBudget is Envoy's retry_budget.
type RetryBudget struct {
	Percent        *uint32 `json:"percent,omitempty"`
	MinConcurrency *uint32 `json:"minConcurrency,omitempty"`
}

// Timeouts bound requests.
type Timeouts struct {
	// Request bounds the whole request including retries. Zero disables.
	Request *metav1.Duration `json:"request,omitempty"`
	// Idle bounds the time a stream may go without activity.
	Idle *metav1.Duration `json:"idle,omitempty"`
	// Connect bounds establishing an upstream connection.
	Connect *metav1.Duration `json:"connect,omitempty"`
}

// RateLimit is a local (per proxy) token bucket on the inbound side of the
// Service's instances.
type RateLimit struct {
	Requests uint32          `json:"requests"`
	Interval metav1.Duration `json:"interval"`
	// Burst defaults to Requests.
	Burst *uint32 `json:"burst,omitempty"`
}

// FaultInjection delays or aborts a share of requests.
type FaultInjection struct {
	Delay *FaultDelay `json:"delay,omitempty"`
	Abort *FaultAbort `json:"abort,omitempty"`
}

// FaultDelay delays Percent of requests by Duration.
type FaultDelay struct {
	Duration metav1.Duration `json:"duration"`
	Percent  float64         `json:"percent"`
}

// FaultAbort answers Percent of requests with HTTPStatus (or, for gRPC,
// GRPCStatus).
type FaultAbort struct {
	HTTPStatus int32   `json:"httpStatus,omitempty"`
	GRPCStatus *int32  `json:"grpcStatus,omitempty"`
	Percent    float64 `json:"percent"`
}
