package v1alpha1

import (
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// RetryOnValues lists the retry conditions a Retry may name: Envoy's
// x-envoy-retry-on and x-envoy-retry-grpc-on values that the Trellis proxy
// implements ("retriable-headers" is left out: a TrafficPolicy has no field
// for the headers).
func RetryOnValues() []string {
	return []string{
		"5xx", "gateway-error", "reset", "connect-failure", "retriable-4xx",
		"refused-stream", "retriable-status-codes",
		"cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable",
	}
}

// LoadBalancerTypes lists the load-balancing algorithms.
func LoadBalancerTypes() []LoadBalancerType {
	return []LoadBalancerType{LoadBalancerRoundRobin, LoadBalancerLeastRequest, LoadBalancerRandom,
		LoadBalancerRingHash, LoadBalancerMaglev, LoadBalancerPeakEWMA}
}

// targetKinds are the kinds a TrafficPolicy may target, by group.
var targetKinds = map[string][]string{
	"":           {KindService},
	GatewayGroup: {KindHTTPRoute, KindGRPCRoute, KindTCPRoute},
}

func validateTrafficPolicySpec(s *TrafficPolicySpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	tp := p.Child("targetRefs")
	switch {
	case len(s.TargetRefs) == 0:
		errs = append(errs, field.Required(tp, "at least one Service or route"))
	case len(s.TargetRefs) > 16:
		errs = append(errs, field.TooMany(tp, len(s.TargetRefs), 16))
	}
	seen := map[gwv1.LocalPolicyTargetReference]bool{}
	for i, t := range s.TargetRefs {
		ip := tp.Index(i)
		kinds, ok := targetKinds[string(t.Group)]
		if !ok {
			errs = append(errs, field.NotSupported(ip.Child("group"), t.Group, []string{"", GatewayGroup}))
		} else if !slices.Contains(kinds, string(t.Kind)) {
			errs = append(errs, field.NotSupported(ip.Child("kind"), t.Kind, kinds))
		}
		switch {
		case t.Name == "":
			errs = append(errs, field.Required(ip.Child("name"), ""))
		case t.Kind == KindService:
			errs = append(errs, dnsLabel(ip.Child("name"), string(t.Name))...)
		default:
			errs = append(errs, dnsSubdomain(ip.Child("name"), string(t.Name))...)
		}
		if seen[t] {
			errs = append(errs, field.Duplicate(ip, t))
		}
		seen[t] = true
	}
	errs = append(errs, validatePolicySpec(&s.PolicySpec, p)...)
	if s.PolicySpec == (PolicySpec{}) {
		errs = append(errs, field.Required(p, "a TrafficPolicy sets at least one of loadBalancer, connectionLimits, outlierDetection, healthCheck, retry, timeouts, rateLimit, faultInjection"))
	}
	return errs
}

// validatePolicySpec checks each section on its own; TrafficPolicy and Mesh
// defaults share it.
func validatePolicySpec(s *PolicySpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if lb := s.LoadBalancer; lb != nil {
		errs = append(errs, validateLoadBalancer(lb, p.Child("loadBalancer"))...)
	}
	if c := s.ConnectionLimits; c != nil {
		cp := p.Child("connectionLimits")
		errs = append(errs, atLeastOne(cp.Child("maxConnections"), c.MaxConnections)...)
		errs = append(errs, atLeastOne(cp.Child("maxPendingRequests"), c.MaxPendingRequests)...)
		errs = append(errs, atLeastOne(cp.Child("maxRequests"), c.MaxRequests)...)
	}
	if o := s.OutlierDetection; o != nil {
		op := p.Child("outlierDetection")
		errs = append(errs, atLeastOne(op.Child("consecutive5xx"), o.Consecutive5xx)...)
		errs = append(errs, atLeastOne(op.Child("consecutiveGatewayFailure"), o.ConsecutiveGatewayFailure)...)
		errs = append(errs, atLeastOne(op.Child("consecutiveLocalOriginFailure"), o.ConsecutiveLocalOriginFail)...)
		errs = append(errs, positive(op.Child("interval"), o.Interval)...)
		errs = append(errs, positive(op.Child("baseEjectionTime"), o.BaseEjectionTime)...)
		errs = append(errs, positive(op.Child("maxEjectionTime"), o.MaxEjectionTime)...)
		errs = append(errs, percentU(op.Child("maxEjectionPercent"), o.MaxEjectionPercent)...)
		errs = append(errs, percentU(op.Child("failurePercentageThreshold"), o.FailurePercentageThreshold)...)
	}
	if h := s.HealthCheck; h != nil {
		errs = append(errs, validateHealthCheck(h, p.Child("healthCheck"))...)
	}
	if r := s.Retry; r != nil {
		errs = append(errs, validateRetry(r, p.Child("retry"))...)
	}
	if t := s.Timeouts; t != nil {
		tp := p.Child("timeouts")
		errs = append(errs, nonNegative(tp.Child("request"), t.Request)...)
		errs = append(errs, nonNegative(tp.Child("idle"), t.Idle)...)
		errs = append(errs, positive(tp.Child("connect"), t.Connect)...)
	}
	if r := s.RateLimit; r != nil {
		rp := p.Child("rateLimit")
		if r.Requests < 1 {
			errs = append(errs, field.Invalid(rp.Child("requests"), int64(r.Requests), "must be >= 1"))
		}
		if r.Interval.Duration <= 0 {
			errs = append(errs, field.Invalid(rp.Child("interval"), r.Interval.Duration.String(), "must be > 0"))
		}
		errs = append(errs, atLeastOne(rp.Child("burst"), r.Burst)...)
	}
	if f := s.FaultInjection; f != nil {
		errs = append(errs, validateFault(f, p.Child("faultInjection"))...)
	}
	return errs
}

func validateLoadBalancer(lb *LoadBalancer, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if lb.Type != "" && !slices.Contains(LoadBalancerTypes(), lb.Type) {
		errs = append(errs, field.NotSupported(p.Child("type"), lb.Type, LoadBalancerTypes()))
	}
	hashing := lb.Type == LoadBalancerRingHash || lb.Type == LoadBalancerMaglev
	if len(lb.HashOn) > 0 && !hashing {
		errs = append(errs, field.Forbidden(p.Child("hashOn"), "only with type RingHash or Maglev"))
	}
	for i, k := range lb.HashOn {
		kp := p.Child("hashOn").Index(i)
		n := 0
		if k.Header != "" {
			n++
			errs = append(errs, gwHeaderName(kp.Child("header"), k.Header)...)
		}
		if k.Cookie != "" {
			n++
			if strings.ContainsAny(k.Cookie, " \t;=,\"") {
				errs = append(errs, field.Invalid(kp.Child("cookie"), k.Cookie, "must be a cookie name (RFC 6265 token)"))
			}
		}
		if k.QueryParam != "" {
			n++
		}
		if k.SourceIP {
			n++
		}
		if n != 1 {
			errs = append(errs, field.Invalid(kp, k, "exactly one of header, cookie, queryParam, sourceIP must be set"))
		}
	}
	return errs
}

func validateHealthCheck(h *HealthCheck, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, positive(p.Child("interval"), h.Interval)...)
	errs = append(errs, positive(p.Child("timeout"), h.Timeout)...)
	errs = append(errs, atLeastOne(p.Child("unhealthyThreshold"), h.UnhealthyThreshold)...)
	errs = append(errs, atLeastOne(p.Child("healthyThreshold"), h.HealthyThreshold)...)
	n := 0
	if h.HTTP != nil {
		n++
		hp := p.Child("http")
		if !strings.HasPrefix(h.HTTP.Path, "/") {
			errs = append(errs, field.Invalid(hp.Child("path"), h.HTTP.Path, "must start with '/'"))
		}
		for i, s := range h.HTTP.ExpectedStatuses {
			if s < 100 || s > 599 {
				errs = append(errs, field.Invalid(hp.Child("expectedStatuses").Index(i), s, "must be between 100 and 599, inclusive"))
			}
		}
	}
	if h.TCP != nil {
		n++
	}
	if h.GRPC != nil {
		n++
	}
	if n != 1 {
		errs = append(errs, field.Invalid(p, n, "exactly one of http, tcp, grpc must be set"))
	}
	return errs
}

func validateRetry(r *Retry, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if r.Attempts != nil && *r.Attempts > 100 {
		errs = append(errs, field.Invalid(p.Child("attempts"), int64(*r.Attempts), "must be <= 100"))
	}
	seen := map[string]bool{}
	for i, on := range r.On {
		op := p.Child("on").Index(i)
		if !slices.Contains(RetryOnValues(), on) {
			errs = append(errs, field.NotSupported(op, on, RetryOnValues()))
		} else if seen[on] {
			errs = append(errs, field.Duplicate(op, on))
		}
		seen[on] = true
	}
	for i, c := range r.StatusCodes {
		if c < 100 || c > 599 {
			errs = append(errs, field.Invalid(p.Child("statusCodes").Index(i), c, "must be between 100 and 599, inclusive"))
		}
	}
	if len(r.StatusCodes) > 0 && len(r.On) > 0 && !seen["retriable-status-codes"] {
		errs = append(errs, field.Invalid(p.Child("statusCodes"), r.StatusCodes, `has no effect unless "on" lists "retriable-status-codes"`))
	}
	errs = append(errs, positive(p.Child("perTryTimeout"), r.PerTryTimeout)...)
	if b := r.BackOff; b != nil {
		bp := p.Child("backOff")
		errs = append(errs, positive(bp.Child("baseInterval"), b.BaseInterval)...)
		errs = append(errs, positive(bp.Child("maxInterval"), b.MaxInterval)...)
		if b.BaseInterval != nil && b.MaxInterval != nil && b.MaxInterval.Duration < b.BaseInterval.Duration {
			errs = append(errs, field.Invalid(bp.Child("maxInterval"), b.MaxInterval.Duration.String(), "must be >= baseInterval"))
		}
	}
	if b := r.Budget; b != nil {
		errs = append(errs, percentU(p.Child("budget", "percent"), b.Percent)...)
	}
	return errs
}

func validateFault(f *FaultInjection, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if f.Delay == nil && f.Abort == nil {
		errs = append(errs, field.Required(p, "delay, abort or both"))
	}
	if d := f.Delay; d != nil {
		dp := p.Child("delay")
		if d.Duration.Duration <= 0 {
			errs = append(errs, field.Invalid(dp.Child("duration"), d.Duration.Duration.String(), "must be > 0"))
		}
		errs = append(errs, percent(dp.Child("percent"), d.Percent)...)
	}
	if a := f.Abort; a != nil {
		ap := p.Child("abort")
		switch {
		case a.HTTPStatus == 0 && a.GRPCStatus == nil:
			errs = append(errs, field.Required(ap, "httpStatus or grpcStatus"))
		case a.HTTPStatus != 0 && a.GRPCStatus != nil:
			errs = append(errs, field.Forbidden(ap.Child("grpcStatus"), "httpStatus and grpcStatus are exclusive"))
		case a.HTTPStatus != 0 && (a.HTTPStatus < 200 || a.HTTPStatus > 599):
			errs = append(errs, field.Invalid(ap.Child("httpStatus"), a.HTTPStatus, "must be between 200 and 599, inclusive"))
		case a.GRPCStatus != nil && (*a.GRPCStatus < 1 || *a.GRPCStatus > 16):
			errs = append(errs, field.Invalid(ap.Child("grpcStatus"), *a.GRPCStatus, "must be a gRPC status code between 1 and 16, inclusive"))
		}
		errs = append(errs, percent(ap.Child("percent"), a.Percent)...)
	}
	return errs
}
