package health

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"golang.org/x/net/http/httpguts"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Protocol is the kind of active health check.
type Protocol uint8

// The supported health checkers.
const (
	// None means no active health checking: every host is healthy as far as
	// this package is concerned.
	None Protocol = iota
	HTTP          // http_health_check
	TCP           // tcp_health_check
	GRPC          // grpc_health_check
)

func (p Protocol) String() string {
	return [...]string{"none", "http", "tcp", "grpc"}[p]
}

// Defaults of HealthCheck fields (envoy.config.core.v3.HealthCheck).
const (
	// DefaultNoTrafficInterval is no_traffic_interval when unset.
	DefaultNoTrafficInterval = 60 * time.Second
	// maxResponse bounds what a check reads of a response body or a TCP
	// stream while looking for its payloads.
	maxResponse = 64 << 10
)

// Config is one validated health check of a cluster. The zero value (Protocol
// None) disables active health checking. A Config must not be modified once
// passed to a Checker.
//
// Every interval is resolved: the defaults Envoy documents are applied by
// ParseConfig, so no field is zero unless documented so.
type Config struct {
	Protocol Protocol
	// Name is the health checker's name (HealthCheck.name); it only labels
	// logs. May be empty.
	Name string

	Timeout  time.Duration
	Interval time.Duration
	// InitialJitter delays the first check of a host by a random time in
	// [0, InitialJitter). 0 means the first check starts at once.
	InitialJitter time.Duration
	// IntervalJitter adds a random time in [0, IntervalJitter) to every wait.
	IntervalJitter time.Duration
	// IntervalJitterPercent adds a random time in [0, wait*percent/100) to
	// every wait.
	IntervalJitterPercent uint32

	UnhealthyThreshold uint32 // >= 1
	HealthyThreshold   uint32 // >= 1
	// ReuseConnection keeps a host's health check connection between checks
	// (Envoy's default, true).
	ReuseConnection bool

	NoTrafficInterval        time.Duration // default 60s
	NoTrafficHealthyInterval time.Duration // default NoTrafficInterval
	UnhealthyInterval        time.Duration // default Interval
	UnhealthyEdgeInterval    time.Duration // default UnhealthyInterval
	HealthyEdgeInterval      time.Duration // default Interval

	// AlwaysLogFailures logs every failed check, not only the first of a run
	// of failures (always_log_health_check_failures).
	AlwaysLogFailures bool
	// AlwaysLogSuccess logs every successful check, not only the one that
	// makes a host healthy (always_log_health_check_success).
	AlwaysLogSuccess bool

	HTTP HTTPCheck // when Protocol is HTTP
	TCP  TCPCheck  // when Protocol is TCP
	GRPC GRPCCheck // when Protocol is GRPC
}

// Codec is the HTTP version of an HTTP health check (codec_client_type).
type Codec uint8

// The supported codecs.
const (
	HTTP1 Codec = iota
	HTTP2
)

// HTTPCheck is http_health_check.
type HTTPCheck struct {
	// Host is the Host (:authority) header; empty means the cluster's name.
	Host string
	// Path is the request target, an absolute path with an optional query.
	Path string
	// Method is the request method; "GET" unless set.
	Method string
	Codec  Codec
	// UseALPN picks HTTP/2 or HTTP/1.1 from the protocol ALPN negotiated on
	// a TLS connection (use_alpn_protocol).
	UseALPN bool
	// AddHeaders are request_headers_to_add, applied after RemoveHeaders.
	AddHeaders []HeaderOption
	// RemoveHeaders are request_headers_to_remove (lower-case names).
	RemoveHeaders []string
	// Expected are the healthy statuses; [200, 201) unless set.
	Expected []StatusRange
	// Retriable are statuses that count towards unhealthy_threshold instead
	// of failing the host at once. Expected wins over Retriable.
	Retriable []StatusRange
}

// StatusRange is a half-open range of HTTP statuses [Start, End).
type StatusRange struct{ Start, End int }

// AppendAction is HeaderValueOption.append_action.
type AppendAction uint8

// The header append actions, as Envoy names them.
const (
	AppendIfExistsOrAdd AppendAction = iota
	AddIfAbsent
	OverwriteIfExistsOrAdd
	OverwriteIfExists
)

// HeaderOption is one validated HeaderValueOption.
type HeaderOption struct {
	Key, Value string
	Action     AppendAction
	// KeepEmpty adds the header even when Value is empty.
	KeepEmpty bool
}

// TCPCheck is tcp_health_check. With neither Send nor Receive the check
// only connects.
type TCPCheck struct {
	Send []byte
	// Receive blocks must all be found in the response, in order but not
	// necessarily contiguous.
	Receive [][]byte
}

// GRPCCheck is grpc_health_check (grpc.health.v1.Health/Check).
type GRPCCheck struct {
	ServiceName string
	// Authority is the :authority header; empty means the cluster's name.
	Authority string
	// Metadata is initial_metadata, sent as request headers.
	Metadata []HeaderOption
}

// ParseConfig validates a cluster's health_checks. No health check gives the
// zero Config. Every violation is reported, each naming its field relative
// to the cluster, as in "health_checks[0].timeout: required".
func ParseConfig(hcs []*corev3.HealthCheck) (Config, error) {
	switch len(hcs) {
	case 0:
		return Config{}, nil
	case 1:
	default:
		// Envoy runs several checkers that all write the same host flag; one
		// is what every real configuration uses.
		return Config{}, errors.New("health_checks: at most one health check is supported")
	}
	p := &parser{path: "health_checks[0]."}
	cfg := p.healthCheck(hcs[0])
	if err := errors.Join(p.errs...); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

type parser struct {
	path string
	errs []error
}

func (p *parser) fail(field, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s%s: %s", p.path, field, fmt.Sprintf(format, args...)))
}

func (p *parser) healthCheck(hc *corev3.HealthCheck) Config {
	if hc == nil {
		p.fail("", "must not be null")
		return Config{}
	}
	c := Config{
		Name:                  hc.GetName(),
		IntervalJitterPercent: hc.GetIntervalJitterPercent(),
		ReuseConnection:       true,
		AlwaysLogFailures:     hc.GetAlwaysLogHealthCheckFailures(),
		AlwaysLogSuccess:      hc.GetAlwaysLogHealthCheckSuccess(),
	}
	c.Timeout = p.duration("timeout", hc.GetTimeout(), true, 0)
	c.Interval = p.duration("interval", hc.GetInterval(), true, 0)
	c.InitialJitter = p.jitter("initial_jitter", hc.GetInitialJitter())
	c.IntervalJitter = p.jitter("interval_jitter", hc.GetIntervalJitter())
	c.UnhealthyThreshold = p.threshold("unhealthy_threshold", hc.GetUnhealthyThreshold().GetValue(), hc.GetUnhealthyThreshold() != nil)
	c.HealthyThreshold = p.threshold("healthy_threshold", hc.GetHealthyThreshold().GetValue(), hc.GetHealthyThreshold() != nil)
	if v := hc.GetReuseConnection(); v != nil {
		c.ReuseConnection = v.GetValue()
	}
	c.NoTrafficInterval = p.duration("no_traffic_interval", hc.GetNoTrafficInterval(), false, DefaultNoTrafficInterval)
	c.NoTrafficHealthyInterval = p.duration("no_traffic_healthy_interval", hc.GetNoTrafficHealthyInterval(), false, c.NoTrafficInterval)
	c.UnhealthyInterval = p.duration("unhealthy_interval", hc.GetUnhealthyInterval(), false, c.Interval)
	c.UnhealthyEdgeInterval = p.duration("unhealthy_edge_interval", hc.GetUnhealthyEdgeInterval(), false, c.UnhealthyInterval)
	c.HealthyEdgeInterval = p.duration("healthy_edge_interval", hc.GetHealthyEdgeInterval(), false, c.Interval)

	// Fields Trellis does not implement.
	unsupported := []struct {
		field string
		set   bool
	}{
		{"alt_port", hc.GetAltPort() != nil},
		//lint:ignore SA1019 deprecated, still rejected by name.
		{"event_log_path", hc.GetEventLogPath() != ""},
		{"event_logger", len(hc.GetEventLogger()) > 0},
		{"event_service", hc.GetEventService() != nil},
		{"tls_options", hc.GetTlsOptions() != nil},
		{"transport_socket_match_criteria", hc.GetTransportSocketMatchCriteria() != nil},
		{"custom_health_check", hc.GetCustomHealthCheck() != nil},
	}
	for _, u := range unsupported {
		if u.set {
			p.fail(u.field, "not supported")
		}
	}

	switch {
	case hc.GetHttpHealthCheck() != nil:
		c.Protocol = HTTP
		c.HTTP = p.http("http_health_check.", hc.GetHttpHealthCheck())
	case hc.GetTcpHealthCheck() != nil:
		c.Protocol = TCP
		c.TCP = p.tcp("tcp_health_check.", hc.GetTcpHealthCheck())
	case hc.GetGrpcHealthCheck() != nil:
		c.Protocol = GRPC
		c.GRPC = p.grpc("grpc_health_check.", hc.GetGrpcHealthCheck())
	case hc.GetCustomHealthCheck() != nil:
		// Reported above.
	default:
		p.fail("health_checker", "one of http_health_check, tcp_health_check or grpc_health_check is required")
	}
	return c
}

// duration reads a positive duration; unset gives def, or "required".
func (p *parser) duration(field string, d *durationpb.Duration, required bool, def time.Duration) time.Duration {
	if d == nil {
		if required {
			p.fail(field, "required")
		}
		return def
	}
	if err := d.CheckValid(); err != nil {
		p.fail(field, "invalid duration")
		return def
	}
	v := d.AsDuration()
	if v <= 0 {
		p.fail(field, "must be > 0")
		return def
	}
	return v
}

// jitter reads an optional duration that may be 0.
func (p *parser) jitter(field string, d *durationpb.Duration) time.Duration {
	if d == nil {
		return 0
	}
	if err := d.CheckValid(); err != nil || d.AsDuration() < 0 {
		p.fail(field, "must be >= 0")
		return 0
	}
	return d.AsDuration()
}

func (p *parser) threshold(field string, v uint32, set bool) uint32 {
	switch {
	case !set:
		p.fail(field, "required")
	case v == 0:
		// Envoy accepts 0 and then never reaches it; reject the mistake.
		p.fail(field, "must be >= 1")
	}
	return max(v, 1)
}

var methods = map[corev3.RequestMethod]string{
	corev3.RequestMethod_METHOD_UNSPECIFIED: http.MethodGet,
	corev3.RequestMethod_GET:                http.MethodGet,
	corev3.RequestMethod_HEAD:               http.MethodHead,
	corev3.RequestMethod_POST:               http.MethodPost,
	corev3.RequestMethod_PUT:                http.MethodPut,
	corev3.RequestMethod_DELETE:             http.MethodDelete,
	corev3.RequestMethod_OPTIONS:            http.MethodOptions,
	corev3.RequestMethod_TRACE:              http.MethodTrace,
	corev3.RequestMethod_PATCH:              http.MethodPatch,
}

func (p *parser) http(prefix string, h *corev3.HealthCheck_HttpHealthCheck) HTTPCheck {
	c := HTTPCheck{Host: h.GetHost(), Path: h.GetPath(), UseALPN: h.GetUseAlpnProtocol()}
	if c.Host != "" && !httpguts.ValidHostHeader(c.Host) {
		p.fail(prefix+"host", "invalid host header %q", c.Host)
	}
	if c.Path == "" {
		p.fail(prefix+"path", "required")
	} else if u, err := url.ParseRequestURI(c.Path); err != nil || !strings.HasPrefix(c.Path, "/") || u.Host != "" {
		p.fail(prefix+"path", "must be an absolute path, got %q", c.Path)
	}
	m, ok := methods[h.GetMethod()]
	if !ok {
		p.fail(prefix+"method", "%s not allowed", h.GetMethod())
	}
	c.Method = m
	switch h.GetCodecClientType() {
	case typev3.CodecClientType_HTTP1:
		c.Codec = HTTP1
	case typev3.CodecClientType_HTTP2:
		c.Codec = HTTP2
	default:
		p.fail(prefix+"codec_client_type", "%s not supported", h.GetCodecClientType())
	}
	if h.GetSend() != nil {
		p.fail(prefix+"send", "not supported")
	}
	if len(h.GetReceive()) > 0 {
		p.fail(prefix+"receive", "not supported")
	}
	if h.GetResponseBufferSize() != nil {
		p.fail(prefix+"response_buffer_size", "not supported")
	}
	if h.GetServiceNameMatcher() != nil {
		p.fail(prefix+"service_name_matcher", "not supported")
	}
	c.AddHeaders = p.headers(prefix+"request_headers_to_add", h.GetRequestHeadersToAdd())
	for i, name := range h.GetRequestHeadersToRemove() {
		if err := checkHeaderName(name); err != nil {
			p.fail(fmt.Sprintf("%srequest_headers_to_remove[%d]", prefix, i), "%v", err)
		}
		c.RemoveHeaders = append(c.RemoveHeaders, strings.ToLower(name))
	}
	c.Expected = p.statuses(prefix+"expected_statuses", h.GetExpectedStatuses())
	if len(c.Expected) == 0 {
		c.Expected = []StatusRange{{200, 201}} // Envoy: "default 200-only policy"
	}
	c.Retriable = p.statuses(prefix+"retriable_statuses", h.GetRetriableStatuses())
	return c
}

func (p *parser) statuses(field string, rs []*typev3.Int64Range) []StatusRange {
	var out []StatusRange
	for i, r := range rs {
		f := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case r.GetStart() < 100:
			p.fail(f+".start", "must be >= 100")
		case r.GetEnd() > 600:
			p.fail(f+".end", "must be <= 600")
		case r.GetStart() >= r.GetEnd():
			p.fail(f+".end", "must be > start")
		default:
			out = append(out, StatusRange{int(r.GetStart()), int(r.GetEnd())})
		}
	}
	return out
}

func (p *parser) headers(field string, hs []*corev3.HeaderValueOption) []HeaderOption {
	var out []HeaderOption
	for i, h := range hs {
		f := fmt.Sprintf("%s[%d]", field, i)
		o := HeaderOption{Key: strings.ToLower(h.GetHeader().GetKey()), KeepEmpty: h.GetKeepEmptyValue()}
		if h.GetHeader() == nil {
			p.fail(f+".header", "required")
			continue
		}
		if err := checkHeaderName(o.Key); err != nil {
			p.fail(f+".header.key", "%v", err)
		}
		v := h.GetHeader().GetValue()
		if raw := h.GetHeader().GetRawValue(); len(raw) > 0 {
			if v != "" {
				p.fail(f+".header", "only one of value and raw_value may be set")
			}
			v = string(raw)
		}
		// Envoy expands %COMMAND% formatters in header values, "%%" being a
		// literal "%". Only the literal form is supported here.
		if strings.Contains(strings.ReplaceAll(v, "%%", ""), "%") {
			p.fail(f+".header.value", "header formatters (%%...%%) not supported")
		}
		o.Value = strings.ReplaceAll(v, "%%", "%")
		if !httpguts.ValidHeaderFieldValue(o.Value) {
			p.fail(f+".header.value", "invalid header value")
		}
		//lint:ignore SA1019 Envoy still honours this deprecated field; so does Trellis.
		appendOld := h.GetAppend()
		switch {
		case appendOld != nil && h.GetAppendAction() != corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			p.fail(f+".append", "must not be set together with append_action")
		case appendOld != nil && !appendOld.GetValue():
			o.Action = OverwriteIfExistsOrAdd
		default:
			switch h.GetAppendAction() {
			case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
				o.Action = AppendIfExistsOrAdd
			case corev3.HeaderValueOption_ADD_IF_ABSENT:
				o.Action = AddIfAbsent
			case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
				o.Action = OverwriteIfExistsOrAdd
			case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
				o.Action = OverwriteIfExists
			default:
				p.fail(f+".append_action", "unknown value %d", h.GetAppendAction())
			}
		}
		out = append(out, o)
	}
	return out
}

// checkHeaderName rejects names Envoy does not let configuration modify.
func checkHeaderName(name string) error {
	switch {
	case name == "":
		return errors.New("required")
	case strings.HasPrefix(name, ":") || strings.EqualFold(name, "host"):
		return fmt.Errorf("%q may not be modified", name)
	case !httpguts.ValidHeaderFieldName(name):
		return fmt.Errorf("invalid header name %q", name)
	}
	return nil
}

func (p *parser) tcp(prefix string, t *corev3.HealthCheck_TcpHealthCheck) TCPCheck {
	var c TCPCheck
	if t.GetSend() != nil {
		c.Send = p.payload(prefix+"send", t.GetSend())
	}
	for i, r := range t.GetReceive() {
		c.Receive = append(c.Receive, p.payload(fmt.Sprintf("%sreceive[%d]", prefix, i), r))
	}
	if t.GetProxyProtocolConfig() != nil {
		p.fail(prefix+"proxy_protocol_config", "not supported")
	}
	return c
}

func (p *parser) payload(field string, pl *corev3.HealthCheck_Payload) []byte {
	switch v := pl.GetPayload().(type) {
	case *corev3.HealthCheck_Payload_Text:
		b, err := hex.DecodeString(v.Text)
		if err != nil || len(b) == 0 {
			p.fail(field+".text", "must be non-empty hex")
		}
		return b
	case *corev3.HealthCheck_Payload_Binary:
		if len(v.Binary) == 0 {
			p.fail(field+".binary", "must be non-empty")
		}
		return v.Binary
	default:
		p.fail(field, "one of text or binary is required")
		return nil
	}
}

func (p *parser) grpc(prefix string, g *corev3.HealthCheck_GrpcHealthCheck) GRPCCheck {
	c := GRPCCheck{ServiceName: g.GetServiceName(), Authority: g.GetAuthority()}
	if c.Authority != "" && !httpguts.ValidHostHeader(c.Authority) {
		p.fail(prefix+"authority", "invalid authority %q", c.Authority)
	}
	c.Metadata = p.headers(prefix+"initial_metadata", g.GetInitialMetadata())
	return c
}
