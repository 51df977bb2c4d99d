package v1alpha1_test

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	api "github.com/trellis-mesh/trellis/api/v1alpha1"
)

const policyYAML = `apiVersion: trellis.dev/v1alpha1
kind: TrafficPolicy
metadata:
  name: api-resilience
spec:
  targetRefs:
  - {group: "", kind: Service, name: api}
  retry:
    attempts: 2
    "on": [connect-failure, unavailable, retriable-status-codes]
    statusCodes: [503]
    perTryTimeout: 1s
    backOff: {baseInterval: 25ms, maxInterval: 250ms}
    budget: {percent: 20, minConcurrency: 3}
  timeouts: {request: 5s, idle: 0s, connect: 1s}
`

func policy(m ...func(*api.TrafficPolicy)) api.Object { return build(policyYAML, m...) }

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

func TestValidateTrafficPolicy(t *testing.T) {
	spec := func(f func(*api.PolicySpec)) func(*api.TrafficPolicy) {
		return func(p *api.TrafficPolicy) { f(&p.Spec.PolicySpec) }
	}
	runValidate(t, []vcase{
		{"valid", policy(), nil},
		{"targets a route", policy(func(p *api.TrafficPolicy) {
			p.Spec.TargetRefs = []gwv1.LocalPolicyTargetReference{{Group: api.GatewayGroup, Kind: "GRPCRoute", Name: "api.v2"}}
		}), nil},
		{"no targets", policy(func(p *api.TrafficPolicy) { p.Spec.TargetRefs = nil }),
			[]string{"spec.targetRefs: Required value: at least one Service or route"}},
		{"target kind", policy(func(p *api.TrafficPolicy) { p.Spec.TargetRefs[0].Kind = "Gateway" }),
			[]string{`spec.targetRefs[0].kind: Unsupported value: "Gateway": supported values: "Service"`}},
		{"route target needs the gateway group", policy(func(p *api.TrafficPolicy) { p.Spec.TargetRefs[0].Kind = "HTTPRoute" }),
			[]string{`spec.targetRefs[0].kind: Unsupported value: "HTTPRoute": supported values: "Service"`}},
		{"target group", policy(func(p *api.TrafficPolicy) { p.Spec.TargetRefs[0].Group = "apps" }),
			[]string{`spec.targetRefs[0].group: Unsupported value: "apps": supported values: "", "gateway.networking.k8s.io"`}},
		{"target name and duplicate", policy(func(p *api.TrafficPolicy) {
			p.Spec.TargetRefs = append(p.Spec.TargetRefs, p.Spec.TargetRefs[0], gwv1.LocalPolicyTargetReference{Kind: "Service"})
		}), []string{
			`spec.targetRefs[1]: Duplicate value: {"group":"","kind":"Service","name":"api"}`,
			"spec.targetRefs[2].name: Required value",
		}},
		{"empty policy", policy(func(p *api.TrafficPolicy) { p.Spec.PolicySpec = api.PolicySpec{} }),
			[]string{"spec: Required value: a TrafficPolicy sets at least one of loadBalancer, connectionLimits, outlierDetection, healthCheck, retry, timeouts, rateLimit, faultInjection"}},
		{"ring hash", policy(spec(func(s *api.PolicySpec) {
			s.LoadBalancer = &api.LoadBalancer{Type: api.LoadBalancerRingHash, HashOn: []api.HashKey{{Header: "x-user"}, {SourceIP: true}}}
		})), nil},
		{"lb type", policy(spec(func(s *api.PolicySpec) { s.LoadBalancer = &api.LoadBalancer{Type: "Fastest"} })),
			[]string{`spec.loadBalancer.type: Unsupported value: "Fastest": supported values: "RoundRobin", "LeastRequest", "Random", "RingHash", "Maglev", "PeakEWMA"`}},
		{"hashOn only with hashing", policy(spec(func(s *api.PolicySpec) {
			s.LoadBalancer = &api.LoadBalancer{Type: api.LoadBalancerRoundRobin, HashOn: []api.HashKey{{Cookie: "s"}}}
		})), []string{"spec.loadBalancer.hashOn: Forbidden: only with type RingHash or Maglev"}},
		{"hash key exactly one field", policy(spec(func(s *api.PolicySpec) {
			s.LoadBalancer = &api.LoadBalancer{Type: api.LoadBalancerMaglev, HashOn: []api.HashKey{{Header: "a", Cookie: "b"}, {}, {Header: "bad header"}}}
		})), []string{
			`spec.loadBalancer.hashOn[0]: Invalid value: {"header":"a","cookie":"b"}: exactly one of header, cookie, queryParam, sourceIP must be set`,
			`spec.loadBalancer.hashOn[1]: Invalid value: {}: exactly one of header, cookie, queryParam, sourceIP must be set`,
			`spec.loadBalancer.hashOn[2].header: Invalid value: "bad header": must be an HTTP header name (RFC 7230 token characters)`,
		}},
		{"connection limits", policy(spec(func(s *api.PolicySpec) {
			s.ConnectionLimits = &api.ConnectionLimits{MaxConnections: u32(0), MaxRetries: u32(0)}
		})), []string{"spec.connectionLimits.maxConnections: Invalid value: 0: must be >= 1"}},
		{"outlier detection", policy(spec(func(s *api.PolicySpec) {
			s.OutlierDetection = &api.OutlierDetection{Consecutive5xx: u32(5), Interval: dur(0), MaxEjectionPercent: u32(101), FailurePercentageThreshold: u32(100)}
		})), []string{
			`spec.outlierDetection.interval: Invalid value: "0s": must be > 0`,
			"spec.outlierDetection.maxEjectionPercent: Invalid value: 101: must be between 0 and 100, inclusive",
		}},
		{"health check http", policy(spec(func(s *api.PolicySpec) {
			s.HealthCheck = &api.HealthCheck{Interval: dur(time.Second), HTTP: &api.HTTPHealthCheck{Path: "/healthz", ExpectedStatuses: []int32{200, 204}}}
		})), nil},
		{"health check none", policy(spec(func(s *api.PolicySpec) { s.HealthCheck = &api.HealthCheck{Timeout: dur(-time.Second)} })),
			[]string{`spec.healthCheck.timeout: Invalid value: "-1s": must be > 0`, "spec.healthCheck: Invalid value: 0: exactly one of http, tcp, grpc must be set"}},
		{"health check two types", policy(spec(func(s *api.PolicySpec) {
			s.HealthCheck = &api.HealthCheck{TCP: &api.TCPHealthCheck{}, GRPC: &api.GRPCHealthCheck{}, HealthyThreshold: u32(0)}
		})), []string{"spec.healthCheck.healthyThreshold: Invalid value: 0: must be >= 1", "spec.healthCheck: Invalid value: 2: exactly one of http, tcp, grpc must be set"}},
		{"health check http fields", policy(spec(func(s *api.PolicySpec) {
			s.HealthCheck = &api.HealthCheck{HTTP: &api.HTTPHealthCheck{Path: "healthz", ExpectedStatuses: []int32{99}}}
		})), []string{
			`spec.healthCheck.http.path: Invalid value: "healthz": must start with '/'`,
			"spec.healthCheck.http.expectedStatuses[0]: Invalid value: 99: must be between 100 and 599, inclusive",
		}},
		{"retry on", policy(spec(func(s *api.PolicySpec) {
			s.Retry.On = []string{"5xx", "reset-before-request", "5xx", "retriable-status-codes", "deadline-exceeded"}
		})), []string{
			`spec.retry.on[1]: Unsupported value: "reset-before-request": supported values: "5xx", "gateway-error", "reset", "connect-failure", "retriable-4xx", "refused-stream", "retriable-status-codes", "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"`,
			`spec.retry.on[2]: Duplicate value: "5xx"`,
		}},
		{"retry status codes need retriable-status-codes", policy(spec(func(s *api.PolicySpec) { s.Retry.On = []string{"5xx"} })),
			[]string{`spec.retry.statusCodes: Invalid value: [503]: has no effect unless "on" lists "retriable-status-codes"`}},
		{"retry values", policy(spec(func(s *api.PolicySpec) {
			s.Retry.StatusCodes = []int32{600}
			s.Retry.PerTryTimeout = dur(0)
			s.Retry.BackOff = &api.BackOff{BaseInterval: dur(time.Second), MaxInterval: dur(time.Millisecond)}
			s.Retry.Budget.Percent = u32(200)
			s.Retry.Attempts = u32(1000)
		})), []string{
			"spec.retry.attempts: Invalid value: 1000: must be <= 100",
			"spec.retry.statusCodes[0]: Invalid value: 600: must be between 100 and 599, inclusive",
			`spec.retry.perTryTimeout: Invalid value: "0s": must be > 0`,
			`spec.retry.backOff.maxInterval: Invalid value: "1ms": must be >= baseInterval`,
			"spec.retry.budget.percent: Invalid value: 200: must be between 0 and 100, inclusive",
		}},
		{"timeouts", policy(spec(func(s *api.PolicySpec) {
			s.Timeouts = &api.Timeouts{Request: dur(-1), Idle: dur(-time.Second), Connect: dur(0)}
		})), []string{
			`spec.timeouts.request: Invalid value: "-1ns": must be >= 0`,
			`spec.timeouts.idle: Invalid value: "-1s": must be >= 0`,
			`spec.timeouts.connect: Invalid value: "0s": must be > 0`,
		}},
		{"rate limit", policy(spec(func(s *api.PolicySpec) { s.RateLimit = &api.RateLimit{Burst: u32(0)} })), []string{
			"spec.rateLimit.requests: Invalid value: 0: must be >= 1",
			`spec.rateLimit.interval: Invalid value: "0s": must be > 0`,
			"spec.rateLimit.burst: Invalid value: 0: must be >= 1",
		}},
		{"rate limit ok", policy(spec(func(s *api.PolicySpec) {
			s.RateLimit = &api.RateLimit{Requests: 100, Interval: metav1.Duration{Duration: time.Second}}
		})), nil},
		{"fault empty", policy(spec(func(s *api.PolicySpec) { s.FaultInjection = &api.FaultInjection{} })),
			[]string{"spec.faultInjection: Required value: delay, abort or both"}},
		{"fault values", policy(spec(func(s *api.PolicySpec) {
			s.FaultInjection = &api.FaultInjection{Delay: &api.FaultDelay{Percent: 101}, Abort: &api.FaultAbort{HTTPStatus: 700, Percent: -1}}
		})), []string{
			`spec.faultInjection.delay.duration: Invalid value: "0s": must be > 0`,
			"spec.faultInjection.delay.percent: Invalid value: 101: must be between 0 and 100, inclusive",
			"spec.faultInjection.abort.httpStatus: Invalid value: 700: must be between 200 and 599, inclusive",
			"spec.faultInjection.abort.percent: Invalid value: -1: must be between 0 and 100, inclusive",
		}},
		{"fault abort needs a status", policy(spec(func(s *api.PolicySpec) {
			s.FaultInjection = &api.FaultInjection{Abort: &api.FaultAbort{Percent: 10}}
		})), []string{"spec.faultInjection.abort: Required value: httpStatus or grpcStatus"}},
		{"fault abort grpc", policy(spec(func(s *api.PolicySpec) {
			code := int32(14)
			s.FaultInjection = &api.FaultInjection{Abort: &api.FaultAbort{GRPCStatus: &code, Percent: 10}}
		})), nil},
		{"fault abort grpc out of range", policy(spec(func(s *api.PolicySpec) {
			code := int32(0)
			s.FaultInjection = &api.FaultInjection{Abort: &api.FaultAbort{GRPCStatus: &code, Percent: 10}}
		})), []string{"spec.faultInjection.abort.grpcStatus: Invalid value: 0: must be a gRPC status code between 1 and 16, inclusive"}},
		{"fault abort both statuses", policy(spec(func(s *api.PolicySpec) {
			code := int32(14)
			s.FaultInjection = &api.FaultInjection{Abort: &api.FaultAbort{HTTPStatus: 503, GRPCStatus: &code, Percent: 10}}
		})), []string{"spec.faultInjection.abort.grpcStatus: Forbidden: httpStatus and grpcStatus are exclusive"}},
	})
}
