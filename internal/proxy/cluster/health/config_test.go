package health

import (
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// base returns a valid HealthCheck without a checker.
func base() *corev3.HealthCheck {
	return &corev3.HealthCheck{
		Timeout:            durationpb.New(time.Second),
		Interval:           durationpb.New(5 * time.Second),
		UnhealthyThreshold: wrapperspb.UInt32(3),
		HealthyThreshold:   wrapperspb.UInt32(2),
	}
}

func withHTTP(h *corev3.HealthCheck_HttpHealthCheck) *corev3.HealthCheck {
	hc := base()
	hc.HealthChecker = &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: h}
	return hc
}

func hdr(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}}
}

func TestParseConfig(t *testing.T) {
	defaults := Config{
		Timeout: time.Second, Interval: 5 * time.Second,
		UnhealthyThreshold: 3, HealthyThreshold: 2, ReuseConnection: true,
		NoTrafficInterval: time.Minute, NoTrafficHealthyInterval: time.Minute,
		UnhealthyInterval: 5 * time.Second, UnhealthyEdgeInterval: 5 * time.Second,
		HealthyEdgeInterval: 5 * time.Second,
	}
	tests := []struct {
		name string
		in   []*corev3.HealthCheck
		want func(c *Config)
	}{
		{name: "none", in: nil, want: func(c *Config) { *c = Config{} }},
		{
			name: "http defaults",
			in:   []*corev3.HealthCheck{withHTTP(&corev3.HealthCheck_HttpHealthCheck{Path: "/healthz"})},
			want: func(c *Config) {
				c.Protocol = HTTP
				c.HTTP = HTTPCheck{Path: "/healthz", Method: "GET", Expected: []StatusRange{{200, 201}}}
			},
		},
		{
			name: "http full",
			in: []*corev3.HealthCheck{func() *corev3.HealthCheck {
				hc := withHTTP(&corev3.HealthCheck_HttpHealthCheck{
					Host: "svc.local", Path: "/h?x=1", Method: corev3.RequestMethod_HEAD,
					CodecClientType:        typev3.CodecClientType_HTTP2,
					RequestHeadersToAdd:    []*corev3.HeaderValueOption{hdr("X-A", "1%%"), {Header: &corev3.HeaderValue{Key: "x-b", Value: "2"}, Append: wrapperspb.Bool(false)}},
					RequestHeadersToRemove: []string{"User-Agent"},
					ExpectedStatuses:       []*typev3.Int64Range{{Start: 200, End: 300}},
					RetriableStatuses:      []*typev3.Int64Range{{Start: 503, End: 504}},
				})
				hc.Name = "hc"
				hc.InitialJitter = durationpb.New(time.Second)
				hc.IntervalJitter = durationpb.New(2 * time.Second)
				hc.IntervalJitterPercent = 10
				hc.ReuseConnection = wrapperspb.Bool(false)
				hc.NoTrafficInterval = durationpb.New(30 * time.Second)
				hc.UnhealthyInterval = durationpb.New(7 * time.Second)
				hc.HealthyEdgeInterval = durationpb.New(time.Second)
				hc.AlwaysLogHealthCheckFailures = true
				return hc
			}()},
			want: func(c *Config) {
				c.Protocol, c.Name = HTTP, "hc"
				c.InitialJitter, c.IntervalJitter, c.IntervalJitterPercent = time.Second, 2*time.Second, 10
				c.ReuseConnection = false
				c.NoTrafficInterval, c.NoTrafficHealthyInterval = 30*time.Second, 30*time.Second
				c.UnhealthyInterval, c.UnhealthyEdgeInterval = 7*time.Second, 7*time.Second
				c.HealthyEdgeInterval = time.Second
				c.AlwaysLogFailures = true
				c.HTTP = HTTPCheck{
					Host: "svc.local", Path: "/h?x=1", Method: "HEAD", Codec: HTTP2,
					AddHeaders:    []HeaderOption{{Key: "x-a", Value: "1%"}, {Key: "x-b", Value: "2", Action: OverwriteIfExistsOrAdd}},
					RemoveHeaders: []string{"user-agent"},
					Expected:      []StatusRange{{200, 300}},
					Retriable:     []StatusRange{{503, 504}},
				}
			},
		},
		{
			name: "tcp",
			in: []*corev3.HealthCheck{func() *corev3.HealthCheck {
				hc := base()
				hc.HealthChecker = &corev3.HealthCheck_TcpHealthCheck_{TcpHealthCheck: &corev3.HealthCheck_TcpHealthCheck{
					Send: &corev3.HealthCheck_Payload{Payload: &corev3.HealthCheck_Payload_Text{Text: "70696E67"}},
					Receive: []*corev3.HealthCheck_Payload{
						{Payload: &corev3.HealthCheck_Payload_Binary{Binary: []byte("po")}},
						{Payload: &corev3.HealthCheck_Payload_Text{Text: "6e67"}},
					},
				}}
				return hc
			}()},
			want: func(c *Config) {
				c.Protocol = TCP
				c.TCP = TCPCheck{Send: []byte("ping"), Receive: [][]byte{[]byte("po"), []byte("ng")}}
			},
		},
		{
			name: "grpc",
			in: []*corev3.HealthCheck{func() *corev3.HealthCheck {
				hc := base()
				hc.HealthChecker = &corev3.HealthCheck_GrpcHealthCheck_{GrpcHealthCheck: &corev3.HealthCheck_GrpcHealthCheck{
					ServiceName: "pkg.Svc", Authority: "svc", InitialMetadata: []*corev3.HeaderValueOption{hdr("x-k", "v")},
				}}
				return hc
			}()},
			want: func(c *Config) {
				c.Protocol = GRPC
				c.GRPC = GRPCCheck{ServiceName: "pkg.Svc", Authority: "svc", Metadata: []HeaderOption{{Key: "x-k", Value: "v"}}}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseConfig(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			want := defaults
			tc.want(&want)
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("config (-want +got):\n%s", d)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name  string
		in    func() []*corev3.HealthCheck
		wants []string
	}{
		{
			name:  "two checks",
			in:    func() []*corev3.HealthCheck { return []*corev3.HealthCheck{base(), base()} },
			wants: []string{"health_checks: at most one"},
		},
		{
			name: "required fields",
			in:   func() []*corev3.HealthCheck { return []*corev3.HealthCheck{{}} },
			wants: []string{
				"health_checks[0].timeout: required", "health_checks[0].interval: required",
				"health_checks[0].unhealthy_threshold: required", "health_checks[0].healthy_threshold: required",
				"health_checks[0].health_checker: one of",
			},
		},
		{
			name: "bad values",
			in: func() []*corev3.HealthCheck {
				hc := withHTTP(&corev3.HealthCheck_HttpHealthCheck{Path: "/"})
				hc.Timeout = durationpb.New(0)
				hc.Interval = durationpb.New(-time.Second)
				hc.IntervalJitter = durationpb.New(-time.Second)
				hc.UnhealthyThreshold = wrapperspb.UInt32(0)
				hc.NoTrafficInterval = durationpb.New(0)
				return []*corev3.HealthCheck{hc}
			},
			wants: []string{
				"health_checks[0].timeout: must be > 0", "health_checks[0].interval: must be > 0",
				"health_checks[0].interval_jitter: must be >= 0", "health_checks[0].unhealthy_threshold: must be >= 1",
				"health_checks[0].no_traffic_interval: must be > 0",
			},
		},
		{
			name: "unsupported",
			in: func() []*corev3.HealthCheck {
				hc := base()
				hc.EventLogPath = "/tmp/x" //lint:ignore SA1019 rejected by name
				hc.EventService = &corev3.EventServiceConfig{}
				hc.AltPort = wrapperspb.UInt32(1)
				hc.TlsOptions = &corev3.HealthCheck_TlsOptions{}
				hc.TransportSocketMatchCriteria = &structpb.Struct{}
				hc.HealthChecker = &corev3.HealthCheck_CustomHealthCheck_{CustomHealthCheck: &corev3.HealthCheck_CustomHealthCheck{Name: "redis"}}
				return []*corev3.HealthCheck{hc}
			},
			wants: []string{
				"health_checks[0].event_log_path: not supported", "health_checks[0].event_service: not supported",
				"health_checks[0].alt_port: not supported", "health_checks[0].tls_options: not supported",
				"health_checks[0].transport_socket_match_criteria: not supported",
				"health_checks[0].custom_health_check: not supported",
			},
		},
		{
			name: "http fields",
			in: func() []*corev3.HealthCheck {
				return []*corev3.HealthCheck{withHTTP(&corev3.HealthCheck_HttpHealthCheck{
					Host:                   "bad host",
					Method:                 corev3.RequestMethod_CONNECT,
					CodecClientType:        typev3.CodecClientType_HTTP3,
					Send:                   &corev3.HealthCheck_Payload{},
					ServiceNameMatcher:     nil,
					RequestHeadersToAdd:    []*corev3.HeaderValueOption{hdr(":path", "x"), hdr("x-f", "%REQ(x)%"), {}},
					RequestHeadersToRemove: []string{"host"},
					ExpectedStatuses:       []*typev3.Int64Range{{Start: 99, End: 200}, {Start: 300, End: 300}},
					RetriableStatuses:      []*typev3.Int64Range{{Start: 500, End: 601}},
				})}
			},
			wants: []string{
				"health_checks[0].http_health_check.host: invalid",
				"health_checks[0].http_health_check.path: required",
				"health_checks[0].http_health_check.method: CONNECT not allowed",
				"health_checks[0].http_health_check.codec_client_type: HTTP3 not supported",
				"health_checks[0].http_health_check.send: not supported",
				"health_checks[0].http_health_check.request_headers_to_add[0].header.key: \":path\" may not be modified",
				"health_checks[0].http_health_check.request_headers_to_add[1].header.value: header formatters",
				"health_checks[0].http_health_check.request_headers_to_add[2].header: required",
				"health_checks[0].http_health_check.request_headers_to_remove[0]: \"host\" may not be modified",
				"health_checks[0].http_health_check.expected_statuses[0].start: must be >= 100",
				"health_checks[0].http_health_check.expected_statuses[1].end: must be > start",
				"health_checks[0].http_health_check.retriable_statuses[0].end: must be <= 600",
			},
		},
		{
			name: "http path",
			in: func() []*corev3.HealthCheck {
				return []*corev3.HealthCheck{withHTTP(&corev3.HealthCheck_HttpHealthCheck{Path: "http://x/y"})}
			},
			wants: []string{"health_checks[0].http_health_check.path: must be an absolute path"},
		},
		{
			name: "tcp payloads",
			in: func() []*corev3.HealthCheck {
				hc := base()
				hc.HealthChecker = &corev3.HealthCheck_TcpHealthCheck_{TcpHealthCheck: &corev3.HealthCheck_TcpHealthCheck{
					Send:                &corev3.HealthCheck_Payload{Payload: &corev3.HealthCheck_Payload_Text{Text: "zz"}},
					Receive:             []*corev3.HealthCheck_Payload{{}, {Payload: &corev3.HealthCheck_Payload_Binary{}}},
					ProxyProtocolConfig: &corev3.ProxyProtocolConfig{},
				}}
				return []*corev3.HealthCheck{hc}
			},
			wants: []string{
				"health_checks[0].tcp_health_check.send.text: must be non-empty hex",
				"health_checks[0].tcp_health_check.receive[0]: one of text or binary is required",
				"health_checks[0].tcp_health_check.receive[1].binary: must be non-empty",
				"health_checks[0].tcp_health_check.proxy_protocol_config: not supported",
			},
		},
		{
			name: "grpc fields",
			in: func() []*corev3.HealthCheck {
				hc := base()
				hc.HealthChecker = &corev3.HealthCheck_GrpcHealthCheck_{GrpcHealthCheck: &corev3.HealthCheck_GrpcHealthCheck{
					Authority:       "a b",
					InitialMetadata: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x", Value: "v"}, Append: wrapperspb.Bool(true), AppendAction: corev3.HeaderValueOption_ADD_IF_ABSENT}},
				}}
				return []*corev3.HealthCheck{hc}
			},
			wants: []string{
				"health_checks[0].grpc_health_check.authority: invalid",
				"health_checks[0].grpc_health_check.initial_metadata[0].append: must not be set together with append_action",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig(tc.in())
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}
