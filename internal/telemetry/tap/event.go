package tap

import "time"

// Event is one tapped request: the "event" object of docs/tap.md. The
// proxy fills what it knows; the control plane adds the service names
// and identities it can resolve.
type Event struct {
	// Type is "event" on the API stream; empty between proxy and
	// control plane.
	Type            string            `json:"type,omitempty"`
	Time            time.Time         `json:"time"`
	Dataplane       string            `json:"dataplane"`
	Direction       string            `json:"direction"`
	Source          Source            `json:"source"`
	Destination     Destination       `json:"destination"`
	Route           string            `json:"route"`
	RequestID       string            `json:"requestId"`
	Method          string            `json:"method"`
	Authority       string            `json:"authority"`
	Path            string            `json:"path"`
	Status          int               `json:"status"`
	GRPCStatus      *int              `json:"grpcStatus,omitempty"`
	DurationMs      float64           `json:"durationMs"`
	BytesIn         int64             `json:"bytesIn"`
	BytesOut        int64             `json:"bytesOut"`
	ResponseFlags   string            `json:"responseFlags"`
	Reason          string            `json:"reason"`
	TLS             bool              `json:"tls"`
	RequestHeaders  map[string]string `json:"requestHeaders,omitempty"`
	ResponseHeaders map[string]string `json:"responseHeaders,omitempty"`
	// RequestBody and ResponseBody are the first bytes of the bodies,
	// present only for a subscription with Body: printable UTF-8 text as
	// is, anything else base64 with the Encoding EncodingBase64.
	// Truncated: the body went on past them.
	RequestBody           *string `json:"requestBody,omitempty"`
	RequestBodyEncoding   string  `json:"requestBodyEncoding,omitempty"`
	RequestBodyTruncated  bool    `json:"requestBodyTruncated,omitempty"`
	ResponseBody          *string `json:"responseBody,omitempty"`
	ResponseBodyEncoding  string  `json:"responseBodyEncoding,omitempty"`
	ResponseBodyTruncated bool    `json:"responseBodyTruncated,omitempty"`
}

// Source is the calling side of an Event.
type Source struct {
	Identity string `json:"identity"`
	Service  string `json:"service"`
	Address  string `json:"address"`
}

// Destination is the called side of an Event.
type Destination struct {
	Identity string `json:"identity"`
	Service  string `json:"service"`
	Address  string `json:"address"`
	Cluster  string `json:"cluster"`
}

// Directions of an Event and of a Match.
const (
	Inbound  = "inbound"
	Outbound = "outbound"
)

// Match selects the requests of a subscription; every set field must
// match.
type Match struct {
	// Direction is Inbound, Outbound, or "" for both.
	Direction string `json:"direction,omitempty"`
	// Clusters, when set, limits inbound requests to these clusters (the
	// inbound ports' clusters, "inbound:PORT").
	Clusters []string `json:"clusters,omitempty"`
	// Services, when set, limits outbound requests to these called
	// Services ("namespace/name"): the virtual host called
	// ("namespace/name:port") or the cluster picked after a split.
	Services []string `json:"services,omitempty"`
	// PathPrefix matches the start of the path (with query).
	PathPrefix string `json:"pathPrefix,omitempty"`
	// Method and Authority match exactly, ignoring case.
	Method    string `json:"method,omitempty"`
	Authority string `json:"authority,omitempty"`
}

// Subscription is one tap on one proxy.
type Subscription struct {
	// ID tags the subscription's events; unique per stream.
	ID    string `json:"id"`
	Match Match  `json:"match"`
	// MaxRPS caps the events per second (token bucket, burst MaxRPS).
	// Zero or less means DefaultMaxRPS.
	MaxRPS int `json:"maxRps"`
	// Headers captures request and response headers.
	Headers bool `json:"headers,omitempty"`
	// Body captures the first Body bytes (1..MaxBody) of request and
	// response bodies; 0 captures none.
	Body int `json:"body,omitempty"`
	// Redact are header names whose values are replaced by "REDACTED",
	// besides DefaultRedact.
	Redact []string `json:"redact,omitempty"`
}

// DefaultMaxRPS is a subscription's rate cap when it sets none.
const DefaultMaxRPS = 100

// ToProxy is a message from the control plane to a proxy: one of
// Subscribe or Cancel.
type ToProxy struct {
	Subscribe *Subscription `json:"subscribe,omitempty"`
	Cancel    string        `json:"cancel,omitempty"`
}

// FromProxy is a message from a proxy to the control plane. The first
// message of a stream carries only Node (the proxy's xDS node id); later
// ones carry Sub with an Event or a Dropped count.
type FromProxy struct {
	Node  string `json:"node,omitempty"`
	Sub   string `json:"sub,omitempty"`
	Event *Event `json:"event,omitempty"`
	// Dropped counts the subscription's events dropped (rate cap or full
	// queue) since the last report.
	Dropped int64 `json:"dropped,omitempty"`
}
