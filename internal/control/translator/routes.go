package translator

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

// Path match kinds in precedence order.
const (
	pathExact = iota
	pathRegex
	pathPrefix
)

// match is one Gateway API match, normalized for HTTPRoute and GRPCRoute.
// A prefix path has no trailing slash ("" is the root).
type match struct {
	pathKind int
	path     string
	headers  []valueMatch
	query    []valueMatch
	method   string
}

type valueMatch struct {
	name, value string
	regex       bool
}

// entry is one match of one rule of one route: the unit the Gateway API
// orders by precedence.
type entry struct {
	obj   metav1.Object
	key   routeKey
	rule  int
	index int
	m     match
	build func(e *entry, rt *routev3.Route)
}

func compareEntries(a, b *entry) int {
	if c := cmp.Compare(a.m.pathKind, b.m.pathKind); c != 0 {
		return c
	}
	if c := cmp.Compare(len(b.m.path), len(a.m.path)); c != 0 {
		return c
	}
	if c := cmp.Compare(b2i(b.m.method != ""), b2i(a.m.method != "")); c != 0 {
		return c
	}
	if c := cmp.Compare(len(b.m.headers), len(a.m.headers)); c != 0 {
		return c
	}
	if c := cmp.Compare(len(b.m.query), len(a.m.query)); c != 0 {
		return c
	}
	return cmp.Or(olderFirst(a.obj, b.obj), cmp.Compare(a.rule, b.rule), cmp.Compare(a.index, b.index))
}

// visible keeps the routes attached to port that apply to a caller in
// callerNS: routes in the caller's namespace (consumer routes) when the
// Service lives elsewhere and there are any, else the routes in the
// Service's own namespace (producer routes). GEP-1294.
func visible[R metav1.Object](s *service, all []*attached[R], port int32, callerNS string) []R {
	var producer, consumer []R
	for _, a := range all {
		if a.port != 0 && a.port != port {
			continue
		}
		switch ns := v1alpha1.NamespaceOf(a.route); {
		case ns == s.key.Namespace:
			producer = append(producer, a.route)
		case ns == callerNS:
			consumer = append(consumer, a.route)
		}
	}
	if len(consumer) > 0 {
		return consumer
	}
	return producer
}

// serviceRoutes returns the Envoy routes for calls to port of s, in Gateway
// API precedence order. Without any route, one route sends everything to
// s's own cluster.
func (b *builder) serviceRoutes(s *service, port int32) []*routev3.Route {
	proto := protocolOf(portOf(s.spec, port))
	var entries []*entry
	if proto == v1alpha1.ProtocolGRPC {
		for _, r := range visible(s, s.grpc, port, b.callerNS) {
			entries = append(entries, b.grpcEntries(s, port, r)...)
		}
	}
	if len(entries) == 0 {
		for _, r := range visible(s, s.http, port, b.callerNS) {
			entries = append(entries, b.httpEntries(s, port, proto, r)...)
		}
	}
	if len(entries) == 0 {
		pol := s.policy
		a := &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: b.cluster(s, port)}}
		applyRoutePolicy(a, &pol, proto)
		rt := &routev3.Route{
			Name:   "default",
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: a},
		}
		b.fault(rt, &pol)
		return []*routev3.Route{rt}
	}
	slices.SortStableFunc(entries, compareEntries)
	out := make([]*routev3.Route, 0, len(entries))
	for _, e := range entries {
		rt := &routev3.Route{
			Name:  fmt.Sprintf("%s/%s/rule/%d/match/%d", e.key.Namespace, e.key.Name, e.rule, e.index),
			Match: b.routeMatch(&e.m),
		}
		e.build(e, rt)
		out = append(out, rt)
	}
	return out
}

func (b *builder) httpEntries(s *service, port int32, proto v1alpha1.Protocol, r *gwv1.HTTPRoute) []*entry {
	key := routeKey{"HTTPRoute", v1alpha1.NamespaceOf(r), r.Name}
	b.res.routes[key] = true
	var out []*entry
	for i := range r.Spec.Rules {
		rule := &r.Spec.Rules[i]
		build := func(e *entry, rt *routev3.Route) { b.httpRule(s, port, proto, key, rule, e, rt) }
		matches := rule.Matches
		if len(matches) == 0 {
			matches = []gwv1.HTTPRouteMatch{{}}
		}
		for j, gm := range matches {
			m := match{pathKind: pathPrefix, path: "/"}
			if p := gm.Path; p != nil && p.Value != nil {
				m.path = *p.Value
				if p.Type != nil && *p.Type == gwv1.PathMatchExact {
					m.pathKind = pathExact
				} else if p.Type != nil && *p.Type == gwv1.PathMatchRegularExpression {
					m.pathKind = pathRegex
				}
			}
			for _, h := range gm.Headers {
				m.headers = append(m.headers, valueMatch{string(h.Name), h.Value, h.Type != nil && *h.Type == gwv1.HeaderMatchRegularExpression})
			}
			for _, q := range gm.QueryParams {
				m.query = append(m.query, valueMatch{string(q.Name), q.Value, q.Type != nil && *q.Type == gwv1.QueryParamMatchRegularExpression})
			}
			if gm.Method != nil {
				m.method = string(*gm.Method)
			}
			if m.pathKind == pathPrefix {
				m.path = strings.TrimRight(m.path, "/") // "/v2/" and "/v2" are the same prefix
			}
			out = append(out, &entry{obj: r, key: key, rule: i, index: j, m: m, build: build})
		}
	}
	return out
}

func (b *builder) grpcEntries(s *service, port int32, r *gwv1.GRPCRoute) []*entry {
	key := routeKey{"GRPCRoute", v1alpha1.NamespaceOf(r), r.Name}
	b.res.routes[key] = true
	var out []*entry
	for i := range r.Spec.Rules {
		rule := &r.Spec.Rules[i]
		build := func(e *entry, rt *routev3.Route) { b.grpcRule(s, port, key, rule, rt) }
		matches := rule.Matches
		if len(matches) == 0 {
			matches = []gwv1.GRPCRouteMatch{{}}
		}
		for j, gm := range matches {
			m := match{pathKind: pathPrefix}
			if mm := gm.Method; mm != nil {
				svc, meth := deref(mm.Service), deref(mm.Method)
				regex := mm.Type != nil && *mm.Type == gwv1.GRPCMethodMatchRegularExpression
				switch {
				case !regex && svc != "" && meth != "":
					m.pathKind, m.path = pathExact, "/"+svc+"/"+meth
				case !regex && svc != "":
					m.path = "/" + svc
				case !regex && meth != "":
					m.pathKind, m.path = pathRegex, "/[^/]+/"+regexp.QuoteMeta(meth)
				case regex:
					m.pathKind, m.path = pathRegex, "/"+cmp.Or(svc, "[^/]+")+"/"+cmp.Or(meth, "[^/]+")
				}
			}
			for _, h := range gm.Headers {
				m.headers = append(m.headers, valueMatch{string(h.Name), h.Value, h.Type != nil && *h.Type == gwv1.GRPCHeaderMatchRegularExpression})
			}
			out = append(out, &entry{obj: r, key: key, rule: i, index: j, m: m, build: build})
		}
	}
	return out
}

func b2i(v bool) int {
	if v {
		return 1
	}
	return 0
}

func deref[T ~string](p *T) string {
	if p == nil {
		return ""
	}
	return string(*p)
}

// routeMatch turns a match into Envoy's. Gateway API prefixes match whole
// path segments, which is Envoy's path_separated_prefix; proxyless clients
// (grpc-go has no path_separated_prefix) get the equivalent regex.
func (b *builder) routeMatch(m *match) *routev3.RouteMatch {
	rm := &routev3.RouteMatch{}
	switch {
	case m.pathKind == pathExact:
		rm.PathSpecifier = &routev3.RouteMatch_Path{Path: m.path}
	case m.pathKind == pathRegex:
		rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: m.path}}
	case m.path == "":
		rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/"}
	case b.p.Proxyless:
		rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: regexp.QuoteMeta(m.path) + "(/.*)?"}}
	default:
		rm.PathSpecifier = &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: m.path}
	}
	if m.method != "" {
		rm.Headers = append(rm.Headers, headerMatcher(valueMatch{name: ":method", value: m.method}))
	}
	for _, h := range m.headers {
		rm.Headers = append(rm.Headers, headerMatcher(h))
	}
	for _, q := range m.query {
		rm.QueryParameters = append(rm.QueryParameters, &routev3.QueryParameterMatcher{
			Name:                         q.name,
			QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: stringMatcher(q)},
		})
	}
	return rm
}

func headerMatcher(v valueMatch) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{
		Name:                 strings.ToLower(v.name),
		HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: stringMatcher(v)},
	}
}

func stringMatcher(v valueMatch) *matcherv3.StringMatcher {
	if v.regex {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: v.value}}}
	}
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v.value}}
}

// forward builds the action of a rule: its valid backends with a weight
// above 0. It returns nil when there are none, so the caller answers 500 as
// the Gateway API requires.
func (b *builder) forward(routeNS string, refs []gwv1.BackendRef) *routev3.RouteAction {
	var ws []*routev3.WeightedCluster_ClusterWeight
	for _, r := range refs {
		w := int32(1)
		if r.Weight != nil {
			w = *r.Weight
		}
		name, ok := b.backend(r.BackendObjectReference, routeNS)
		if !ok || w <= 0 {
			continue
		}
		ws = append(ws, &routev3.WeightedCluster_ClusterWeight{Name: name, Weight: wrapU32(u32(uint32(w)))})
	}
	switch len(ws) {
	case 0:
		return nil
	case 1:
		return &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: ws[0].Name}}
	}
	return &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: ws}}}
}

func internalError(rt *routev3.Route) {
	rt.Action = &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 500}}
}

func (b *builder) httpRule(s *service, port int32, proto v1alpha1.Protocol, key routeKey, rule *gwv1.HTTPRouteRule, e *entry, rt *routev3.Route) {
	pol := b.m.effective(s, key)
	var a *routev3.RouteAction
	for _, f := range rule.Filters {
		switch f.Type {
		case gwv1.HTTPRouteFilterRequestHeaderModifier:
			rt.RequestHeadersToAdd, rt.RequestHeadersToRemove = headerMods(f.RequestHeaderModifier, rt.RequestHeadersToAdd, rt.RequestHeadersToRemove)
		case gwv1.HTTPRouteFilterResponseHeaderModifier:
			rt.ResponseHeadersToAdd, rt.ResponseHeadersToRemove = headerMods(f.ResponseHeaderModifier, rt.ResponseHeadersToAdd, rt.ResponseHeadersToRemove)
		case gwv1.HTTPRouteFilterRequestRedirect:
			rt.Action = &routev3.Route_Redirect{Redirect: redirect(f.RequestRedirect, &e.m)}
		}
	}
	if rt.Action != nil { // a redirect answers without an upstream
		return
	}
	if a = b.forward(key.Namespace, backendRefs(rule.BackendRefs)); a == nil {
		internalError(rt)
		return
	}
	applyRoutePolicy(a, &pol, proto)
	if r := rule.Retry; r != nil {
		gatewayRetry(a, r)
	}
	if t := rule.Timeouts; t != nil {
		if d, ok := gwDuration(t.Request); ok {
			a.Timeout = durationpb.New(d)
		}
		if d, ok := gwDuration(t.BackendRequest); ok {
			if a.RetryPolicy != nil {
				a.RetryPolicy.PerTryTimeout = durationpb.New(d)
			} else if cur := a.Timeout.AsDuration(); cur == 0 || cur > d {
				a.Timeout = durationpb.New(d) // one attempt: the attempt's bound is the request's
			}
		}
	}
	for _, f := range rule.Filters {
		switch f.Type {
		case gwv1.HTTPRouteFilterURLRewrite:
			rewrite(a, f.URLRewrite, &e.m)
		case gwv1.HTTPRouteFilterRequestMirror:
			b.mirror(a, f.RequestMirror, key.Namespace)
		}
	}
	rt.Action = &routev3.Route_Route{Route: a}
	b.fault(rt, &pol)
}

func (b *builder) grpcRule(s *service, port int32, key routeKey, rule *gwv1.GRPCRouteRule, rt *routev3.Route) {
	pol := b.m.effective(s, key)
	refs := make([]gwv1.BackendRef, len(rule.BackendRefs))
	for i := range rule.BackendRefs {
		refs[i] = rule.BackendRefs[i].BackendRef
	}
	a := b.forward(key.Namespace, refs)
	if a == nil {
		internalError(rt)
		return
	}
	applyRoutePolicy(a, &pol, v1alpha1.ProtocolGRPC)
	for _, f := range rule.Filters {
		switch f.Type {
		case gwv1.GRPCRouteFilterRequestHeaderModifier:
			rt.RequestHeadersToAdd, rt.RequestHeadersToRemove = headerMods(f.RequestHeaderModifier, rt.RequestHeadersToAdd, rt.RequestHeadersToRemove)
		case gwv1.GRPCRouteFilterResponseHeaderModifier:
			rt.ResponseHeadersToAdd, rt.ResponseHeadersToRemove = headerMods(f.ResponseHeaderModifier, rt.ResponseHeadersToAdd, rt.ResponseHeadersToRemove)
		case gwv1.GRPCRouteFilterRequestMirror:
			b.mirror(a, f.RequestMirror, key.Namespace)
		}
	}
	rt.Action = &routev3.Route_Route{Route: a}
	b.fault(rt, &pol)
}

func backendRefs(hs []gwv1.HTTPBackendRef) []gwv1.BackendRef {
	out := make([]gwv1.BackendRef, len(hs))
	for i := range hs {
		out[i] = hs[i].BackendRef
	}
	return out
}

// fault attaches the fault filter's per-route configuration when pol
// injects faults.
func (b *builder) fault(rt *routev3.Route, pol *v1alpha1.PolicySpec) {
	if f := faultFor(pol); f != nil {
		rt.TypedPerFilterConfig = map[string]*anypb.Any{faultFilterName: mustAny(f)}
	}
}

// gatewayRetry lays the Gateway API's own rule.retry over the policy's.
func gatewayRetry(a *routev3.RouteAction, r *gwv1.HTTPRouteRetry) {
	rp := a.RetryPolicy
	if rp == nil {
		rp = &routev3.RetryPolicy{RetryOn: "connect-failure,refused-stream,retriable-status-codes"}
		a.RetryPolicy = rp
	}
	if len(r.Codes) > 0 {
		rp.RetriableStatusCodes = rp.RetriableStatusCodes[:0:0]
		for _, c := range r.Codes {
			rp.RetriableStatusCodes = append(rp.RetriableStatusCodes, uint32(c))
		}
		if !strings.Contains(rp.RetryOn, "retriable-status-codes") {
			rp.RetryOn += ",retriable-status-codes"
		}
	}
	if r.Attempts != nil {
		if *r.Attempts <= 0 {
			a.RetryPolicy = nil
			return
		}
		rp.NumRetries = wrapU32(u32(uint32(*r.Attempts)))
	}
	if d, ok := gwDuration(r.Backoff); ok && d > 0 {
		rp.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(d)}
	}
}

func gwDuration(d *gwv1.Duration) (time.Duration, bool) {
	if d == nil {
		return 0, false
	}
	v, err := time.ParseDuration(string(*d))
	return v, err == nil
}
