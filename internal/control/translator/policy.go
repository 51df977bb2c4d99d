package translator

import (
	"encoding/hex"
	"math"
	"reflect"
	"strings"
	"time"

	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

// Trellis' own defaults, under every Mesh's spec.defaults.
const (
	defaultRequestTimeout = 15 * time.Second // http and http2 routes; gRPC: none (deadlines travel with the call)
	defaultConnectTimeout = 5 * time.Second
	peakEWMATypeURL       = "type.googleapis.com/trellis.lb.v1.PeakEwma" // internal/proxy/cluster.PeakEWMATypeURL
)

func u32(v uint32) *uint32 { return &v }

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

// trellisDefaults is the policy every Service gets before the Mesh's
// defaults and TrafficPolicies: peak-EWMA balancing, a 20 % retry budget,
// two retries of failures that are safe to retry, and outlier detection.
func trellisDefaults() v1alpha1.PolicySpec {
	return v1alpha1.PolicySpec{
		LoadBalancer: &v1alpha1.LoadBalancer{Type: v1alpha1.LoadBalancerPeakEWMA},
		Retry: &v1alpha1.Retry{
			Attempts:    u32(2),
			On:          []string{"connect-failure", "refused-stream", "unavailable", "cancelled", "retriable-status-codes"},
			StatusCodes: []int32{503},
			Budget:      &v1alpha1.RetryBudget{Percent: u32(20), MinConcurrency: u32(3)},
		},
		OutlierDetection: &v1alpha1.OutlierDetection{
			Consecutive5xx:     u32(5),
			Interval:           dur(10 * time.Second),
			BaseEjectionTime:   dur(30 * time.Second),
			MaxEjectionPercent: u32(50),
		},
		Timeouts: &v1alpha1.Timeouts{Connect: dur(defaultConnectTimeout)},
	}
}

// mergePolicy lays src over dst field by field: a set field of src replaces
// dst's, nested structs merge recursively, lists replace whole. It never
// writes through a pointer it did not allocate, so dst may share structs
// with other policies.
func mergePolicy(dst, src *v1alpha1.PolicySpec) {
	mergeValue(reflect.ValueOf(dst).Elem(), reflect.ValueOf(src).Elem())
	// The kind of health check is one choice, not three fields: the more
	// specific policy's kind replaces the other's.
	if s := src.HealthCheck; s != nil && (s.HTTP != nil || s.TCP != nil || s.GRPC != nil) {
		hc := *dst.HealthCheck
		hc.HTTP, hc.TCP, hc.GRPC = s.HTTP, s.TCP, s.GRPC
		dst.HealthCheck = &hc
	}
}

func mergeValue(dst, src reflect.Value) {
	for i := range src.NumField() {
		s, d := src.Field(i), dst.Field(i)
		switch {
		case s.IsZero():
		case s.Kind() == reflect.Pointer && s.Elem().Kind() == reflect.Struct && !d.IsNil() &&
			s.Type().Elem() != reflect.TypeFor[metav1.Duration]():
			c := reflect.New(s.Type().Elem())
			c.Elem().Set(d.Elem())
			mergeValue(c.Elem(), s.Elem())
			d.Set(c)
		default:
			d.Set(s)
		}
	}
}

// effective returns the policy of a route: its TrafficPolicies over its
// parent Service's.
func (m *meshIndex) effective(s *service, route routeKey) v1alpha1.PolicySpec {
	p := s.policy
	if l := m.routePolicy[route]; l != nil {
		mergePolicy(&p, l)
	}
	return p
}

// applyClusterPolicy sets the cluster-level fields of pol on c: balancing,
// circuit breaking with the retry budget, outlier detection, health checks
// and the connect timeout. Proxyless clients get only what grpc-go
// implements (ROUND_ROBIN or RING_HASH).
func applyClusterPolicy(c *clusterv3.Cluster, pol *v1alpha1.PolicySpec, proto v1alpha1.Protocol, proxyless bool) {
	c.ConnectTimeout = durationpb.New(defaultConnectTimeout)
	if t := pol.Timeouts; t != nil && t.Connect != nil {
		c.ConnectTimeout = durationpb.New(t.Connect.Duration)
	}
	lbType := v1alpha1.LoadBalancerPeakEWMA
	if pol.LoadBalancer != nil && pol.LoadBalancer.Type != "" {
		lbType = pol.LoadBalancer.Type
	}
	switch {
	case proxyless && (lbType == v1alpha1.LoadBalancerRingHash || lbType == v1alpha1.LoadBalancerMaglev):
		c.LbPolicy = clusterv3.Cluster_RING_HASH
	case proxyless:
		c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
	case lbType == v1alpha1.LoadBalancerRoundRobin:
		c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
	case lbType == v1alpha1.LoadBalancerLeastRequest:
		c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
	case lbType == v1alpha1.LoadBalancerRandom:
		c.LbPolicy = clusterv3.Cluster_RANDOM
	case lbType == v1alpha1.LoadBalancerRingHash:
		c.LbPolicy = clusterv3.Cluster_RING_HASH
	case lbType == v1alpha1.LoadBalancerMaglev:
		c.LbPolicy = clusterv3.Cluster_MAGLEV
	default:
		c.LoadBalancingPolicy = &clusterv3.LoadBalancingPolicy{Policies: []*clusterv3.LoadBalancingPolicy_Policy{{
			TypedExtensionConfig: &corev3.TypedExtensionConfig{
				Name:        "trellis.lb.peak_ewma",
				TypedConfig: mustAny(&xdstypev3.TypedStruct{TypeUrl: peakEWMATypeURL}),
			},
		}}}
	}

	th := &clusterv3.CircuitBreakers_Thresholds{}
	if l := pol.ConnectionLimits; l != nil {
		th.MaxConnections = wrapU32(l.MaxConnections)
		th.MaxPendingRequests = wrapU32(l.MaxPendingRequests)
		th.MaxRequests = wrapU32(l.MaxRequests)
		th.MaxRetries = wrapU32(l.MaxRetries)
	}
	if r := pol.Retry; r != nil && r.Budget != nil && !proxyless {
		th.RetryBudget = &clusterv3.CircuitBreakers_Thresholds_RetryBudget{
			MinRetryConcurrency: wrapU32(r.Budget.MinConcurrency),
		}
		if r.Budget.Percent != nil {
			th.RetryBudget.BudgetPercent = &typev3.Percent{Value: float64(*r.Budget.Percent)}
		}
	}
	if th.MaxConnections != nil || th.MaxPendingRequests != nil || th.MaxRequests != nil || th.MaxRetries != nil || th.RetryBudget != nil {
		c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{th}}
	}

	if od := pol.OutlierDetection; od != nil {
		c.OutlierDetection = outlierDetection(od)
	}
	if hc := pol.HealthCheck; hc != nil && !proxyless {
		c.HealthChecks = []*corev3.HealthCheck{healthCheck(hc, proto)}
	}
}

func outlierDetection(od *v1alpha1.OutlierDetection) *clusterv3.OutlierDetection {
	o := &clusterv3.OutlierDetection{
		Consecutive_5Xx:                wrapU32(od.Consecutive5xx),
		ConsecutiveGatewayFailure:      wrapU32(od.ConsecutiveGatewayFailure),
		ConsecutiveLocalOriginFailure:  wrapU32(od.ConsecutiveLocalOriginFail),
		Interval:                       pbDur(od.Interval),
		BaseEjectionTime:               pbDur(od.BaseEjectionTime),
		MaxEjectionTime:                pbDur(od.MaxEjectionTime),
		MaxEjectionPercent:             wrapU32(od.MaxEjectionPercent),
		FailurePercentageThreshold:     wrapU32(od.FailurePercentageThreshold),
		SplitExternalLocalOriginErrors: od.ConsecutiveLocalOriginFail != nil,
	}
	// Envoy enforces these detectors only when told to (default 0 %).
	if od.ConsecutiveGatewayFailure != nil {
		o.EnforcingConsecutiveGatewayFailure = wrapperspb.UInt32(100)
	}
	if od.FailurePercentageThreshold != nil {
		o.EnforcingFailurePercentage = wrapperspb.UInt32(100)
		o.FailurePercentageRequestVolume = wrapperspb.UInt32(5)
		o.FailurePercentageMinimumHosts = wrapperspb.UInt32(2)
	}
	return o
}

func healthCheck(hc *v1alpha1.HealthCheck, proto v1alpha1.Protocol) *corev3.HealthCheck {
	h := &corev3.HealthCheck{
		Interval:           durationpb.New(10 * time.Second),
		Timeout:            durationpb.New(time.Second),
		UnhealthyThreshold: wrapperspb.UInt32(3),
		HealthyThreshold:   wrapperspb.UInt32(1),
	}
	if hc.Interval != nil {
		h.Interval = pbDur(hc.Interval)
	}
	if hc.Timeout != nil {
		h.Timeout = pbDur(hc.Timeout)
	}
	if hc.UnhealthyThreshold != nil {
		h.UnhealthyThreshold = wrapU32(hc.UnhealthyThreshold)
	}
	if hc.HealthyThreshold != nil {
		h.HealthyThreshold = wrapU32(hc.HealthyThreshold)
	}
	switch {
	case hc.HTTP != nil:
		hh := &corev3.HealthCheck_HttpHealthCheck{Path: hc.HTTP.Path}
		for _, s := range hc.HTTP.ExpectedStatuses {
			hh.ExpectedStatuses = append(hh.ExpectedStatuses, &typev3.Int64Range{Start: int64(s), End: int64(s) + 1})
		}
		if proto == v1alpha1.ProtocolHTTP2 || proto == v1alpha1.ProtocolGRPC {
			hh.CodecClientType = typev3.CodecClientType_HTTP2
		}
		h.HealthChecker = &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: hh}
	case hc.GRPC != nil:
		h.HealthChecker = &corev3.HealthCheck_GrpcHealthCheck_{GrpcHealthCheck: &corev3.HealthCheck_GrpcHealthCheck{ServiceName: hc.GRPC.ServiceName}}
	default: // TCP, also when nothing is set: a connect check
		t := &corev3.HealthCheck_TcpHealthCheck{}
		if hc.TCP != nil && hc.TCP.Send != "" {
			t.Send = &corev3.HealthCheck_Payload{Payload: &corev3.HealthCheck_Payload_Text{Text: hex.EncodeToString([]byte(hc.TCP.Send))}}
		}
		if hc.TCP != nil && hc.TCP.Receive != "" {
			t.Receive = []*corev3.HealthCheck_Payload{{Payload: &corev3.HealthCheck_Payload_Text{Text: hex.EncodeToString([]byte(hc.TCP.Receive))}}}
		}
		h.HealthChecker = &corev3.HealthCheck_TcpHealthCheck_{TcpHealthCheck: t}
	}
	return h
}

// applyRoutePolicy sets the route-level fields of pol on a forwarding
// route: timeouts, retries and (for the hashing balancers) hash_policy.
func applyRoutePolicy(a *routev3.RouteAction, pol *v1alpha1.PolicySpec, proto v1alpha1.Protocol) {
	switch {
	case pol.Timeouts != nil && pol.Timeouts.Request != nil:
		a.Timeout = durationpb.New(pol.Timeouts.Request.Duration)
	case proto == v1alpha1.ProtocolGRPC:
		// No default deadline for gRPC (streams are long-lived); the
		// caller's grpc-timeout header bounds the call instead.
		a.Timeout = durationpb.New(0)
		a.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{GrpcTimeoutHeaderMax: durationpb.New(0)}
	default:
		a.Timeout = durationpb.New(defaultRequestTimeout)
	}
	if pol.Timeouts != nil && pol.Timeouts.Idle != nil {
		a.IdleTimeout = pbDur(pol.Timeouts.Idle)
	}
	if r := pol.Retry; r != nil && r.Attempts != nil && *r.Attempts > 0 && len(r.On) > 0 {
		rp := &routev3.RetryPolicy{
			RetryOn:                       strings.Join(r.On, ","),
			NumRetries:                    wrapU32(r.Attempts),
			PerTryTimeout:                 pbDur(r.PerTryTimeout),
			HostSelectionRetryMaxAttempts: 3,
			RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{
				Name:       "envoy.retry_host_predicates.previous_hosts",
				ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: mustAny(&previoushostsv3.PreviousHostsPredicate{})},
			}},
		}
		for _, c := range r.StatusCodes {
			rp.RetriableStatusCodes = append(rp.RetriableStatusCodes, uint32(c))
		}
		if b := r.BackOff; b != nil && b.BaseInterval != nil {
			rp.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: pbDur(b.BaseInterval), MaxInterval: pbDur(b.MaxInterval)}
		}
		a.RetryPolicy = rp
	}
	if lb := pol.LoadBalancer; lb != nil && (lb.Type == v1alpha1.LoadBalancerRingHash || lb.Type == v1alpha1.LoadBalancerMaglev) {
		for _, h := range lb.HashOn {
			hp := &routev3.RouteAction_HashPolicy{}
			switch {
			case h.Header != "":
				hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: h.Header}}
			case h.Cookie != "":
				hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_Cookie_{Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: h.Cookie}}
			case h.QueryParam != "":
				hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_QueryParameter_{QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: h.QueryParam}}
			case h.SourceIP:
				hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_ConnectionProperties_{ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}
			default:
				continue
			}
			a.HashPolicy = append(a.HashPolicy, hp)
		}
	}
}

// faultFor returns the per-route configuration of the fault filter for
// pol, or nil when it injects nothing.
func faultFor(pol *v1alpha1.PolicySpec) *faultv3.HTTPFault {
	fi := pol.FaultInjection
	if fi == nil || (fi.Delay == nil && fi.Abort == nil) {
		return nil
	}
	f := &faultv3.HTTPFault{}
	if d := fi.Delay; d != nil {
		f.Delay = &commonfaultv3.FaultDelay{
			FaultDelaySecifier: &commonfaultv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(d.Duration.Duration)},
			Percentage:         perMillion(d.Percent),
		}
	}
	if a := fi.Abort; a != nil {
		f.Abort = &faultv3.FaultAbort{Percentage: perMillion(a.Percent)}
		if a.GRPCStatus != nil && a.HTTPStatus == 0 {
			f.Abort.ErrorType = &faultv3.FaultAbort_GrpcStatus{GrpcStatus: uint32(*a.GRPCStatus)}
		} else {
			f.Abort.ErrorType = &faultv3.FaultAbort_HttpStatus{HttpStatus: uint32(a.HTTPStatus)}
		}
	}
	return f
}

func perMillion(percent float64) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: uint32(math.Round(percent * 10000)), Denominator: typev3.FractionalPercent_MILLION}
}

func wrapU32(v *uint32) *wrapperspb.UInt32Value {
	if v == nil {
		return nil
	}
	return wrapperspb.UInt32(*v)
}

func pbDur(d *metav1.Duration) *durationpb.Duration {
	if d == nil {
		return nil
	}
	return durationpb.New(d.Duration)
}
