package v1alpha1_test

import (
	"testing"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	api "github.com/trellis-mesh/trellis/api/v1alpha1"
)

const httpRouteYAML = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: api-split
spec:
  parentRefs:
  - {group: "", kind: Service, name: api, port: 8080}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /v1}
      headers: [{name: x-canary, value: "true"}]
      queryParams: [{name: debug, value: "1"}]
      method: GET
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-route, value: split}], remove: [x-debug]}
    - type: RequestMirror
      requestMirror: {backendRef: {name: api-shadow, port: 8080}, percent: 10}
    backendRefs:
    - {name: api-v1, port: 8080, weight: 90}
    - {name: api-v2, port: 8080, weight: 10}
    timeouts: {request: 10s, backendRequest: 2s}
`

func httpRoute(m ...func(*gwv1.HTTPRoute)) api.Object { return build(httpRouteYAML, m...) }

const grpcRouteYAML = `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: greeter
spec:
  parentRefs:
  - {group: core, kind: Service, name: greeter}
  rules:
  - matches:
    - method: {service: helloworld.Greeter, method: SayHello}
      headers: [{name: x-canary, value: "true"}]
    backendRefs:
    - {name: greeter-v2, port: 9090}
`

func grpcRoute(m ...func(*gwv1.GRPCRoute)) api.Object { return build(grpcRouteYAML, m...) }

const tcpRouteYAML = `apiVersion: gateway.networking.k8s.io/v1
kind: TCPRoute
metadata:
  name: db
spec:
  parentRefs:
  - {group: "", kind: Service, name: db}
  rules:
  - backendRefs:
    - {name: db-primary, port: 5432}
`

func tcpRoute(m ...func(*gwv1.TCPRoute)) api.Object { return build(tcpRouteYAML, m...) }

func p[T any](v T) *T { return &v }

func rule0(f func(r *gwv1.HTTPRouteRule)) func(*gwv1.HTTPRoute) {
	return func(rt *gwv1.HTTPRoute) { f(&rt.Spec.Rules[0]) }
}

func TestValidateRouteParents(t *testing.T) {
	runValidate(t, []vcase{
		{"valid", httpRoute(), nil},
		{"parent kind defaults to Gateway", httpRoute(func(r *gwv1.HTTPRoute) { r.Spec.ParentRefs = []gwv1.ParentReference{{Name: "gw"}} }),
			[]string{`spec.parentRefs[0].kind: Unsupported value: "Gateway": supported values: "Service"`}},
		{"parent group", httpRoute(func(r *gwv1.HTTPRoute) { r.Spec.ParentRefs[0].Group = p(gwv1.Group("apps")) }),
			[]string{`spec.parentRefs[0].group: Unsupported value: "apps": supported values: "", "core"`}},
		{"no parents", httpRoute(func(r *gwv1.HTTPRoute) { r.Spec.ParentRefs = nil }),
			[]string{"spec.parentRefs: Required value: a route attaches to at least one Service"}},
		{"parent fields", httpRoute(func(r *gwv1.HTTPRoute) {
			pr := &r.Spec.ParentRefs[0]
			pr.Name, pr.Port, pr.Namespace, pr.SectionName = "", p(int32(0)), p(gwv1.Namespace("A")), p(gwv1.SectionName("http"))
		}), []string{
			"spec.parentRefs[0].name: Required value",
			`spec.parentRefs[0].namespace: Invalid value: "A": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`,
			"spec.parentRefs[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
		}},
		{"duplicate parent", httpRoute(func(r *gwv1.HTTPRoute) { r.Spec.ParentRefs = append(r.Spec.ParentRefs, r.Spec.ParentRefs[0]) }),
			[]string{`spec.parentRefs[1]: Duplicate value: "api"`}},
		{"default gateways", httpRoute(func(r *gwv1.HTTPRoute) { r.Spec.UseDefaultGateways = gwv1.GatewayDefaultScopeAll }),
			[]string{"spec.useDefaultGateways: Forbidden: Trellis routes attach to Services, not Gateways"}},
		{"hostnames", httpRoute(func(r *gwv1.HTTPRoute) { r.Spec.Hostnames = []gwv1.Hostname{"*.api.local", "API", "10.0.0.1x_"} }), []string{
			`spec.hostnames[1]: Invalid value: "API": must be a lower-case DNS name, optionally prefixed by '*.'`,
			`spec.hostnames[2]: Invalid value: "10.0.0.1x_": must be a lower-case DNS name, optionally prefixed by '*.'`,
		}},
	})
}

func TestValidateHTTPRoute(t *testing.T) {
	runValidate(t, []vcase{
		{"no rules", httpRoute(func(r *gwv1.HTTPRoute) { r.Spec.Rules = nil }), []string{"spec.rules: Required value: at least one rule"}},
		{"17 rules", httpRoute(func(r *gwv1.HTTPRoute) {
			for len(r.Spec.Rules) < 17 {
				r.Spec.Rules = append(r.Spec.Rules, gwv1.HTTPRouteRule{})
			}
		}), []string{"spec.rules: Too many: 17: must have at most 16 items"}},
		{"rule names unique", httpRoute(func(r *gwv1.HTTPRoute) {
			r.Spec.Rules[0].Name = p(gwv1.SectionName("a"))
			r.Spec.Rules = append(r.Spec.Rules, gwv1.HTTPRouteRule{Name: p(gwv1.SectionName("a"))})
		}), []string{`spec.rules[1].name: Duplicate value: "a"`}},
		{"weights", httpRoute(rule0(func(r *gwv1.HTTPRouteRule) {
			r.BackendRefs[0].Weight = p(int32(1_000_001))
			r.BackendRefs[1].Weight = p(int32(-1))
		})), []string{
			"spec.rules[0].backendRefs[0].weight: Invalid value: 1000001: must be <= 1000000",
			"spec.rules[0].backendRefs[1].weight: Invalid value: -1: must be >= 0",
		}},
		{"zero weight is valid", httpRoute(rule0(func(r *gwv1.HTTPRouteRule) { r.BackendRefs[1].Weight = p(int32(0)) })), nil},
		{"backend ref", httpRoute(rule0(func(r *gwv1.HTTPRouteRule) {
			r.BackendRefs[0].Port = nil
			r.BackendRefs[0].Kind = p(gwv1.Kind("ServiceImport"))
			r.BackendRefs[1].Group = p(gwv1.Group("multicluster.x-k8s.io"))
		})), []string{
			`spec.rules[0].backendRefs[0].kind: Unsupported value: "ServiceImport": supported values: "Service"`,
			"spec.rules[0].backendRefs[0].port: Required value: required for a Service backend",
			`spec.rules[0].backendRefs[1].group: Unsupported value: "multicluster.x-k8s.io": supported values: "", "core"`,
		}},
		{"paths", httpRoute(rule0(func(r *gwv1.HTTPRouteRule) {
			r.Matches = []gwv1.HTTPRouteMatch{
				{Path: &gwv1.HTTPPathMatch{Type: p(gwv1.PathMatchExact), Value: p("v1")}},
				{Path: &gwv1.HTTPPathMatch{Value: p("/a//b")}},
				{Path: &gwv1.HTTPPathMatch{Value: p("/a b")}},
				{Path: &gwv1.HTTPPathMatch{Type: p(gwv1.PathMatchRegularExpression), Value: p("/(a")}},
				{Path: &gwv1.HTTPPathMatch{Type: p(gwv1.PathMatchRegularExpression), Value: p(`/users/\d+`)}},
				{Path: &gwv1.HTTPPathMatch{Type: p(gwv1.PathMatchType("Glob")), Value: p("/*")}},
			}
		})), []string{
			`spec.rules[0].matches[0].path.value: Invalid value: "v1": must be an absolute path and start with '/'`,
			`spec.rules[0].matches[1].path.value: Invalid value: "/a//b": must not contain '//', '/./', '/../', '%2f', '%2F' or '#', nor end with '/..' or '/.'`,
			`spec.rules[0].matches[2].path.value: Invalid value: "/a b": must contain only URL path characters or %-escapes`,
			"spec.rules[0].matches[3].path.value: Invalid value: \"/(a\": must be an RE2 regular expression: error parsing regexp: missing closing ): `/(a`",
			`spec.rules[0].matches[5].path.type: Unsupported value: "Glob": supported values: "Exact", "PathPrefix", "RegularExpression"`,
		}},
		{"headers and query params", httpRoute(rule0(func(r *gwv1.HTTPRouteRule) {
			m := &r.Matches[0]
			m.Headers = []gwv1.HTTPHeaderMatch{{Name: "X-A", Value: "1"}, {Name: "x-a", Value: "2"}, {Name: "bad:name", Value: "x"},
				{Name: "x-re", Value: "(", Type: p(gwv1.HeaderMatchRegularExpression)}, {Name: "x-empty"}}
			m.QueryParams = []gwv1.HTTPQueryParamMatch{{Name: "a", Value: "1"}, {Name: "A", Value: "2"}, {Name: "a", Value: "3"}}
			m.Method = p(gwv1.HTTPMethod("FETCH"))
		})), []string{
			`spec.rules[0].matches[0].headers[1].name: Duplicate value: "x-a"`,
			`spec.rules[0].matches[0].headers[2].name: Invalid value: "bad:name": must be an HTTP header name (RFC 7230 token characters)`,
			"spec.rules[0].matches[0].headers[3].value: Invalid value: \"(\": must be an RE2 regular expression: error parsing regexp: missing closing ): `(`",
			"spec.rules[0].matches[0].headers[4].value: Required value",
			`spec.rules[0].matches[0].queryParams[2].name: Duplicate value: "a"`,
			`spec.rules[0].matches[0].method: Unsupported value: "FETCH": supported values: "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"`,
		}},
		{"65 matches", httpRoute(rule0(func(r *gwv1.HTTPRouteRule) {
			for len(r.Matches) < 65 {
				r.Matches = append(r.Matches, gwv1.HTTPRouteMatch{})
			}
		})), []string{"spec.rules[0].matches: Too many: 65: must have at most 64 items"}},
		{"129 matches in all", httpRoute(func(r *gwv1.HTTPRoute) {
			r.Spec.Rules = nil
			for range 3 {
				r.Spec.Rules = append(r.Spec.Rules, gwv1.HTTPRouteRule{Matches: make([]gwv1.HTTPRouteMatch, 43)})
			}
		}), []string{"spec.rules: Invalid value: 129: must have at most 128 matches across all rules"}},
		{"timeouts", httpRoute(rule0(func(r *gwv1.HTTPRouteRule) {
			r.Timeouts = &gwv1.HTTPRouteTimeouts{Request: p(gwv1.Duration("1s")), BackendRequest: p(gwv1.Duration("2s"))}
		})), []string{`spec.rules[0].timeouts.backendRequest: Invalid value: "2s": must not be longer than the request timeout`}},
		{"zero request timeout disables the bound", httpRoute(rule0(func(r *gwv1.HTTPRouteRule) {
			r.Timeouts = &gwv1.HTTPRouteTimeouts{Request: p(gwv1.Duration("0s")), BackendRequest: p(gwv1.Duration("2s"))}
		})), nil},
		{"timeout syntax", httpRoute(rule0(func(r *gwv1.HTTPRouteRule) {
			r.Timeouts = &gwv1.HTTPRouteTimeouts{Request: p(gwv1.Duration("1.5s")), BackendRequest: p(gwv1.Duration("1h2m3s4ms5s"))}
		})), []string{
			`spec.rules[0].timeouts.request: Invalid value: "1.5s": must be a Gateway API duration: 1 to 4 number-unit pairs, units h, m, s, ms (e.g. 1m30s)`,
			`spec.rules[0].timeouts.backendRequest: Invalid value: "1h2m3s4ms5s": must be a Gateway API duration: 1 to 4 number-unit pairs, units h, m, s, ms (e.g. 1m30s)`,
		}},
		{"retry", httpRoute(rule0(func(r *gwv1.HTTPRouteRule) {
			r.Retry = &gwv1.HTTPRouteRetry{Codes: []gwv1.HTTPRouteRetryStatusCode{503, 302}, Attempts: p(0), Backoff: p(gwv1.Duration("1x"))}
		})), []string{
			"spec.rules[0].retry.codes[1]: Invalid value: 302: must be between 400 and 599, inclusive",
			"spec.rules[0].retry.attempts: Invalid value: 0: must be >= 1",
			`spec.rules[0].retry.backoff: Invalid value: "1x": must be a Gateway API duration: 1 to 4 number-unit pairs, units h, m, s, ms (e.g. 1m30s)`,
		}},
		{"session persistence", httpRoute(rule0(func(r *gwv1.HTTPRouteRule) { r.SessionPersistence = &gwv1.SessionPersistence{} })),
			[]string{"spec.rules[0].sessionPersistence: Forbidden: not supported by Trellis: use a TrafficPolicy loadBalancer of type RingHash with hashOn cookie or header"}},
	})
}

func TestValidateHTTPFilters(t *testing.T) {
	filters := func(fs ...gwv1.HTTPRouteFilter) func(*gwv1.HTTPRoute) {
		return rule0(func(r *gwv1.HTTPRouteRule) { r.Filters = fs })
	}
	hdr := &gwv1.HTTPHeaderFilter{Add: []gwv1.HTTPHeader{{Name: "x-a", Value: "1"}}}
	full := &gwv1.HTTPPathModifier{Type: gwv1.FullPathHTTPPathModifier, ReplaceFullPath: p("/new")}
	prefix := &gwv1.HTTPPathModifier{Type: gwv1.PrefixMatchHTTPPathModifier, ReplacePrefixMatch: p("/v2")}
	runValidate(t, []vcase{
		{"field matching type", httpRoute(filters(gwv1.HTTPRouteFilter{Type: "RequestHeaderModifier", ResponseHeaderModifier: hdr})), []string{
			"spec.rules[0].filters[0].requestHeaderModifier: Required value: required when type is RequestHeaderModifier",
			"spec.rules[0].filters[0].responseHeaderModifier: Forbidden: must be unset when type is RequestHeaderModifier",
		}},
		{"unsupported type", httpRoute(filters(gwv1.HTTPRouteFilter{Type: "CORS", CORS: &gwv1.HTTPCORSFilter{}})),
			[]string{`spec.rules[0].filters[0].type: Unsupported value: "CORS": supported values: "RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror", "RequestRedirect", "URLRewrite"`}},
		{"repeated", httpRoute(filters(gwv1.HTTPRouteFilter{Type: "ResponseHeaderModifier", ResponseHeaderModifier: hdr}, gwv1.HTTPRouteFilter{Type: "ResponseHeaderModifier", ResponseHeaderModifier: hdr})),
			[]string{`spec.rules[0].filters[1].type: Duplicate value: "ResponseHeaderModifier"`}},
		{"header filter", httpRoute(filters(gwv1.HTTPRouteFilter{Type: "RequestHeaderModifier", RequestHeaderModifier: &gwv1.HTTPHeaderFilter{
			Set: []gwv1.HTTPHeader{{Name: "X-A", Value: "1"}, {Name: "x-a", Value: "2"}}, Add: []gwv1.HTTPHeader{{Name: "", Value: ""}}, Remove: []string{"a", "A"},
		}})), []string{
			`spec.rules[0].filters[0].requestHeaderModifier.set[1].name: Duplicate value: "x-a"`,
			"spec.rules[0].filters[0].requestHeaderModifier.add[0].name: Required value",
			"spec.rules[0].filters[0].requestHeaderModifier.add[0].value: Required value",
			`spec.rules[0].filters[0].requestHeaderModifier.remove[1]: Duplicate value: "A"`,
		}},
		{"mirror", httpRoute(filters(gwv1.HTTPRouteFilter{Type: "RequestMirror", RequestMirror: &gwv1.HTTPRequestMirrorFilter{
			BackendRef: gwv1.BackendObjectReference{Name: "shadow"}, Percent: p(int32(101)), Fraction: &gwv1.Fraction{Numerator: 1},
		}})), []string{
			"spec.rules[0].filters[0].requestMirror.backendRef.port: Required value: required for a Service backend",
			"spec.rules[0].filters[0].requestMirror: Forbidden: only one of percent or fraction may be set",
			"spec.rules[0].filters[0].requestMirror.percent: Invalid value: 101: must be between 0 and 100, inclusive",
		}},
		{"mirror fraction", httpRoute(filters(gwv1.HTTPRouteFilter{Type: "RequestMirror", RequestMirror: &gwv1.HTTPRequestMirrorFilter{
			BackendRef: gwv1.BackendObjectReference{Name: "shadow", Port: p(int32(80))}, Fraction: &gwv1.Fraction{Numerator: 3, Denominator: p(int32(2))},
		}})), []string{"spec.rules[0].filters[0].requestMirror.fraction.numerator: Invalid value: 3: must be <= denominator"}},
		{"mirror fraction ok", httpRoute(filters(gwv1.HTTPRouteFilter{Type: "RequestMirror", RequestMirror: &gwv1.HTTPRequestMirrorFilter{
			BackendRef: gwv1.BackendObjectReference{Name: "shadow", Port: p(int32(80))}, Fraction: &gwv1.Fraction{Numerator: 1, Denominator: p(int32(1000))},
		}})), nil},
		{"redirect with backends", httpRoute(filters(gwv1.HTTPRouteFilter{Type: "RequestRedirect", RequestRedirect: &gwv1.HTTPRequestRedirectFilter{StatusCode: p(301)}})),
			[]string{"spec.rules[0].filters[0]: Forbidden: a RequestRedirect filter must not be used together with backendRefs"}},
		{"redirect fields", httpRoute(rule0(func(r *gwv1.HTTPRouteRule) {
			r.BackendRefs = nil
			r.Filters = []gwv1.HTTPRouteFilter{{Type: "RequestRedirect", RequestRedirect: &gwv1.HTTPRequestRedirectFilter{
				Scheme: p("ftp"), Hostname: p(gwv1.PreciseHostname("*.x")), Port: p(int32(0)), StatusCode: p(304), Path: full,
			}}}
		})), []string{
			`spec.rules[0].filters[0].requestRedirect.scheme: Unsupported value: "ftp": supported values: "http", "https"`,
			`spec.rules[0].filters[0].requestRedirect.hostname: Invalid value: "*.x": must be a lower-case DNS name`,
			"spec.rules[0].filters[0].requestRedirect.port: Invalid value: 0: must be between 1 and 65535, inclusive",
			`spec.rules[0].filters[0].requestRedirect.statusCode: Unsupported value: 304: supported values: "301", "302", "303", "307", "308"`,
		}},
		{"rewrite and redirect exclusive", httpRoute(rule0(func(r *gwv1.HTTPRouteRule) {
			r.BackendRefs = nil
			r.Filters = []gwv1.HTTPRouteFilter{{Type: "RequestRedirect", RequestRedirect: &gwv1.HTTPRequestRedirectFilter{}}, {Type: "URLRewrite", URLRewrite: &gwv1.HTTPURLRewriteFilter{}}}
		})), []string{"spec.rules[0].filters: Forbidden: RequestRedirect and URLRewrite filters are exclusive"}},
		{"rewrite prefix with one prefix match", httpRoute(filters(gwv1.HTTPRouteFilter{Type: "URLRewrite", URLRewrite: &gwv1.HTTPURLRewriteFilter{Path: prefix, Hostname: p(gwv1.PreciseHostname("api.internal"))}})), nil},
		{"rewrite prefix needs one prefix match", httpRoute(rule0(func(r *gwv1.HTTPRouteRule) {
			r.Matches = append(r.Matches, r.Matches[0])
			r.Filters = []gwv1.HTTPRouteFilter{{Type: "URLRewrite", URLRewrite: &gwv1.HTTPURLRewriteFilter{Path: prefix}}}
		})), []string{`spec.rules[0].filters[0].urlRewrite.path.type: Invalid value: "ReplacePrefixMatch": ReplacePrefixMatch needs the rule to have exactly one match, of type PathPrefix`}},
		{"path modifier union", httpRoute(filters(gwv1.HTTPRouteFilter{Type: "URLRewrite", URLRewrite: &gwv1.HTTPURLRewriteFilter{
			Path: &gwv1.HTTPPathModifier{Type: gwv1.FullPathHTTPPathModifier, ReplacePrefixMatch: p("/x")},
		}})), []string{
			"spec.rules[0].filters[0].urlRewrite.path.replaceFullPath: Required value: required when type is ReplaceFullPath",
			"spec.rules[0].filters[0].urlRewrite.path.replacePrefixMatch: Forbidden: must be unset when type is ReplaceFullPath",
		}},
		{"path modifier type", httpRoute(filters(gwv1.HTTPRouteFilter{Type: "URLRewrite", URLRewrite: &gwv1.HTTPURLRewriteFilter{Path: &gwv1.HTTPPathModifier{Type: "Strip"}}})),
			[]string{`spec.rules[0].filters[0].urlRewrite.path.type: Unsupported value: "Strip": supported values: "ReplaceFullPath", "ReplacePrefixMatch"`}},
		{"backend filters", httpRoute(rule0(func(r *gwv1.HTTPRouteRule) {
			r.BackendRefs[0].Filters = []gwv1.HTTPRouteFilter{{Type: "RequestHeaderModifier"}}
		})), []string{"spec.rules[0].backendRefs[0].filters[0].requestHeaderModifier: Required value: required when type is RequestHeaderModifier"}},
	})
}

func TestValidateGRPCRoute(t *testing.T) {
	rule := func(f func(r *gwv1.GRPCRouteRule)) func(*gwv1.GRPCRoute) {
		return func(rt *gwv1.GRPCRoute) { f(&rt.Spec.Rules[0]) }
	}
	runValidate(t, []vcase{
		{"valid", grpcRoute(), nil},
		{"no rules", grpcRoute(func(r *gwv1.GRPCRoute) { r.Spec.Rules = nil }), []string{"spec.rules: Required value: at least one rule"}},
		{"method match", grpcRoute(rule(func(r *gwv1.GRPCRouteRule) {
			r.Matches = []gwv1.GRPCRouteMatch{
				{Method: &gwv1.GRPCMethodMatch{}},
				{Method: &gwv1.GRPCMethodMatch{Service: p("hello/world"), Method: p("1x")}},
				{Method: &gwv1.GRPCMethodMatch{Type: p(gwv1.GRPCMethodMatchRegularExpression), Service: p("hello\\..*"), Method: p("[")}},
				{Method: &gwv1.GRPCMethodMatch{Type: p(gwv1.GRPCMethodMatchType("Prefix")), Method: p("Say")}},
			}
		})), []string{
			"spec.rules[0].matches[0].method: Required value: service, method or both",
			`spec.rules[0].matches[1].method.service: Invalid value: "hello/world": must match ^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$`,
			`spec.rules[0].matches[1].method.method: Invalid value: "1x": must match ^[A-Za-z_][A-Za-z_0-9]*$`,
			"spec.rules[0].matches[2].method.method: Invalid value: \"[\": must be an RE2 regular expression: error parsing regexp: missing closing ]: `[`",
			`spec.rules[0].matches[3].method.type: Unsupported value: "Prefix": supported values: "Exact", "RegularExpression"`,
		}},
		{"header match", grpcRoute(rule(func(r *gwv1.GRPCRouteRule) {
			r.Matches[0].Headers = append(r.Matches[0].Headers, gwv1.GRPCHeaderMatch{Name: "X-Canary", Value: "1"})
		})), []string{`spec.rules[0].matches[0].headers[1].name: Duplicate value: "X-Canary"`}},
		{"filters", grpcRoute(rule(func(r *gwv1.GRPCRouteRule) {
			r.Filters = []gwv1.GRPCRouteFilter{
				{Type: "RequestHeaderModifier", RequestHeaderModifier: &gwv1.HTTPHeaderFilter{Remove: []string{"x"}}},
				{Type: "RequestHeaderModifier", RequestHeaderModifier: &gwv1.HTTPHeaderFilter{}, ExtensionRef: &gwv1.LocalObjectReference{}},
				{Type: "ExtensionRef"},
				{Type: "RequestMirror", RequestMirror: &gwv1.HTTPRequestMirrorFilter{BackendRef: gwv1.BackendObjectReference{Name: "shadow", Port: p(int32(9090))}}},
			}
		})), []string{
			`spec.rules[0].filters[1].type: Duplicate value: "RequestHeaderModifier"`,
			"spec.rules[0].filters[1].extensionRef: Forbidden: must be unset when type is RequestHeaderModifier",
			`spec.rules[0].filters[2].type: Unsupported value: "ExtensionRef": supported values: "RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror"`,
		}},
		{"backend weight", grpcRoute(rule(func(r *gwv1.GRPCRouteRule) { r.BackendRefs[0].Weight = p(int32(-1)) })),
			[]string{"spec.rules[0].backendRefs[0].weight: Invalid value: -1: must be >= 0"}},
		{"parent kind", grpcRoute(func(r *gwv1.GRPCRoute) { r.Spec.ParentRefs[0].Kind = p(gwv1.Kind("Gateway")) }),
			[]string{`spec.parentRefs[0].kind: Unsupported value: "Gateway": supported values: "Service"`}},
	})
}

func TestValidateTCPRoute(t *testing.T) {
	runValidate(t, []vcase{
		{"valid", tcpRoute(), nil},
		{"no rules", tcpRoute(func(r *gwv1.TCPRoute) { r.Spec.Rules = nil }), []string{"spec.rules: Required value: exactly one rule"}},
		{"two rules", tcpRoute(func(r *gwv1.TCPRoute) { r.Spec.Rules = append(r.Spec.Rules, r.Spec.Rules[0]) }),
			[]string{"spec.rules: Too many: 2: must have at most 1 item"}},
		{"no backends", tcpRoute(func(r *gwv1.TCPRoute) { r.Spec.Rules[0].BackendRefs = nil }),
			[]string{"spec.rules[0].backendRefs: Required value: at least one backend"}},
		{"backend port", tcpRoute(func(r *gwv1.TCPRoute) { r.Spec.Rules[0].BackendRefs[0].Port = p(int32(70000)) }),
			[]string{"spec.rules[0].backendRefs[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"}},
	})
}
