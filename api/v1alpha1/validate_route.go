package v1alpha1

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Limits and patterns from the Gateway API v1.6 CRD schemas.
var (
	gwDurationRE   = regexp.MustCompile(`^([0-9]{1,5}(h|m|s|ms)){1,4}$`)
	hostnameRE     = regexp.MustCompile(`^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	headerNameRE   = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+\-.^_` + "`" + `|~]+$`)
	pathCharsRE    = regexp.MustCompile(`^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$`)
	grpcServiceRE  = regexp.MustCompile(`^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$`)
	grpcMethodRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z_0-9]*$`)
	coreGroups     = []string{"", "core"}
	serviceKindStr = []string{KindService}
)

// ParseGatewayDuration parses a Gateway API duration ("1h", "500ms",
// "1m30s": at most four number-unit pairs, units h, m, s, ms), as GEP-2257
// defines it.
func ParseGatewayDuration(d gwv1.Duration) (time.Duration, error) {
	if !gwDurationRE.MatchString(string(d)) {
		return 0, fmt.Errorf("%q is not a Gateway API duration (e.g. 1h, 500ms, 1m30s)", d)
	}
	return time.ParseDuration(string(d))
}

// IsCoreGroup reports whether group names the Kubernetes core group, which
// GAMMA spells "" or "core".
func IsCoreGroup(group string) bool { return group == "" || group == "core" }

// validateParentRefs checks that a route attaches to Services only: Trellis
// is a mesh (GAMMA); Gateways come later.
func validateParentRefs(s *gwv1.CommonRouteSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.UseDefaultGateways != "" {
		errs = append(errs, field.Forbidden(p.Child("useDefaultGateways"), "Trellis routes attach to Services, not Gateways"))
	}
	pp := p.Child("parentRefs")
	switch {
	case len(s.ParentRefs) == 0:
		errs = append(errs, field.Required(pp, "a route attaches to at least one Service"))
	case len(s.ParentRefs) > 32:
		errs = append(errs, field.TooMany(pp, len(s.ParentRefs), 32))
	}
	seen := map[string]bool{}
	for i, ref := range s.ParentRefs {
		ip := pp.Index(i)
		kind, group := "Gateway", GatewayGroup
		if ref.Kind != nil {
			kind = string(*ref.Kind)
		}
		if ref.Group != nil {
			group = string(*ref.Group)
		}
		if kind != KindService {
			errs = append(errs, field.NotSupported(ip.Child("kind"), kind, serviceKindStr))
		} else if !IsCoreGroup(group) {
			errs = append(errs, field.NotSupported(ip.Child("group"), group, coreGroups))
		}
		errs = append(errs, objectName(ip.Child("name"), string(ref.Name))...)
		if ref.Namespace != nil {
			errs = append(errs, dnsLabel(ip.Child("namespace"), string(*ref.Namespace))...)
		}
		if ref.SectionName != nil {
			errs = append(errs, dnsLabel(ip.Child("sectionName"), string(*ref.SectionName))...)
		}
		if ref.Port != nil {
			errs = append(errs, port(ip.Child("port"), *ref.Port)...)
		}
		key := fmt.Sprint(kind, "/", deref(ref.Namespace), "/", ref.Name, "/", deref(ref.SectionName), "/", deref(ref.Port))
		if seen[key] {
			errs = append(errs, field.Duplicate(ip, string(ref.Name)))
		}
		seen[key] = true
	}
	return errs
}

// objectName checks a referenced Service's name.
func objectName(p *field.Path, name string) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(p, "")}
	}
	return dnsLabel(p, name)
}

func deref[T any](v *T) T {
	var zero T
	if v == nil {
		return zero
	}
	return *v
}

// validateBackendObjectRef checks a reference to a Service backend: kind
// Service in the core group, a name and a port.
func validateBackendObjectRef(b *gwv1.BackendObjectReference, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if b.Group != nil && !IsCoreGroup(string(*b.Group)) {
		errs = append(errs, field.NotSupported(p.Child("group"), string(*b.Group), coreGroups))
	}
	if b.Kind != nil && *b.Kind != KindService {
		errs = append(errs, field.NotSupported(p.Child("kind"), string(*b.Kind), serviceKindStr))
	}
	errs = append(errs, objectName(p.Child("name"), string(b.Name))...)
	if b.Namespace != nil {
		errs = append(errs, dnsLabel(p.Child("namespace"), string(*b.Namespace))...)
	}
	if b.Port == nil {
		errs = append(errs, field.Required(p.Child("port"), "required for a Service backend"))
	} else {
		errs = append(errs, port(p.Child("port"), *b.Port)...)
	}
	return errs
}

func validateBackendRef(b *gwv1.BackendRef, p *field.Path) field.ErrorList {
	errs := validateBackendObjectRef(&b.BackendObjectReference, p)
	if w := b.Weight; w != nil {
		switch {
		case *w < 0:
			errs = append(errs, field.Invalid(p.Child("weight"), *w, "must be >= 0"))
		case *w > 1_000_000:
			errs = append(errs, field.Invalid(p.Child("weight"), *w, "must be <= 1000000"))
		}
	}
	return errs
}

func validateHostnames(hs []gwv1.Hostname, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(hs) > 16 {
		errs = append(errs, field.TooMany(p, len(hs), 16))
	}
	for i, h := range hs {
		if len(h) > 253 || !hostnameRE.MatchString(string(h)) {
			errs = append(errs, field.Invalid(p.Index(i), string(h), "must be a lower-case DNS name, optionally prefixed by '*.'"))
		}
	}
	return errs
}

// validateRuleNames checks the optional rule names: section names, unique.
func validateRuleNames(names []*gwv1.SectionName, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := map[gwv1.SectionName]bool{}
	for i, n := range names {
		if n == nil {
			continue
		}
		np := p.Index(i).Child("name")
		errs = append(errs, dnsSubdomain(np, string(*n))...)
		if seen[*n] {
			errs = append(errs, field.Duplicate(np, string(*n)))
		}
		seen[*n] = true
	}
	return errs
}

func validateRuleCount(n, matches int, p *field.Path) field.ErrorList {
	switch {
	case n == 0:
		return field.ErrorList{field.Required(p, "at least one rule")}
	case n > 16:
		return field.ErrorList{field.TooMany(p, n, 16)}
	case matches > 128:
		return field.ErrorList{field.Invalid(p, matches, "must have at most 128 matches across all rules")}
	}
	return nil
}

func validateHTTPRouteSpec(s *gwv1.HTTPRouteSpec, p *field.Path) field.ErrorList {
	errs := validateParentRefs(&s.CommonRouteSpec, p)
	errs = append(errs, validateHostnames(s.Hostnames, p.Child("hostnames"))...)
	rp := p.Child("rules")
	matches := 0
	names := make([]*gwv1.SectionName, len(s.Rules))
	for i := range s.Rules {
		r := &s.Rules[i]
		names[i] = r.Name
		matches += len(r.Matches)
		errs = append(errs, validateHTTPRule(r, rp.Index(i))...)
	}
	errs = append(errs, validateRuleCount(len(s.Rules), matches, rp)...)
	errs = append(errs, validateRuleNames(names, rp)...)
	return errs
}

func validateHTTPRule(r *gwv1.HTTPRouteRule, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	mp := p.Child("matches")
	if len(r.Matches) > 64 {
		errs = append(errs, field.TooMany(mp, len(r.Matches), 64))
	}
	for i := range r.Matches {
		errs = append(errs, validateHTTPMatch(&r.Matches[i], mp.Index(i))...)
	}
	errs = append(errs, validateHTTPFilters(r.Filters, r.Matches, p.Child("filters"))...)
	if len(r.BackendRefs) > 0 {
		for i, f := range r.Filters {
			if f.Type == gwv1.HTTPRouteFilterRequestRedirect {
				errs = append(errs, field.Forbidden(p.Child("filters").Index(i), "a RequestRedirect filter must not be used together with backendRefs"))
			}
		}
	}
	bp := p.Child("backendRefs")
	if len(r.BackendRefs) > 16 {
		errs = append(errs, field.TooMany(bp, len(r.BackendRefs), 16))
	}
	for i := range r.BackendRefs {
		b := &r.BackendRefs[i]
		errs = append(errs, validateBackendRef(&b.BackendRef, bp.Index(i))...)
		errs = append(errs, validateHTTPFilters(b.Filters, r.Matches, bp.Index(i).Child("filters"))...)
	}
	if t := r.Timeouts; t != nil {
		tp := p.Child("timeouts")
		req, reqOK := gatewayDuration(tp.Child("request"), t.Request, &errs)
		back, backOK := gatewayDuration(tp.Child("backendRequest"), t.BackendRequest, &errs)
		if reqOK && backOK && req != 0 && back > req {
			errs = append(errs, field.Invalid(tp.Child("backendRequest"), string(*t.BackendRequest), "must not be longer than the request timeout"))
		}
	}
	if rt := r.Retry; rt != nil {
		rtp := p.Child("retry")
		for i, c := range rt.Codes {
			if c < 400 || c > 599 {
				errs = append(errs, field.Invalid(rtp.Child("codes").Index(i), int64(c), "must be between 400 and 599, inclusive"))
			}
		}
		if rt.Attempts != nil && *rt.Attempts < 1 {
			errs = append(errs, field.Invalid(rtp.Child("attempts"), int64(*rt.Attempts), "must be >= 1"))
		}
		gatewayDuration(rtp.Child("backoff"), rt.Backoff, &errs)
	}
	if r.SessionPersistence != nil {
		errs = append(errs, sessionPersistenceUnsupported(p.Child("sessionPersistence")))
	}
	return errs
}

func sessionPersistenceUnsupported(p *field.Path) *field.Error {
	return field.Forbidden(p, "not supported by Trellis: use a TrafficPolicy loadBalancer of type RingHash with hashOn cookie or header")
}

// gatewayDuration parses an optional Gateway API duration, appending an
// error when it does not parse. ok is false when d is unset or invalid.
func gatewayDuration(p *field.Path, d *gwv1.Duration, errs *field.ErrorList) (time.Duration, bool) {
	if d == nil {
		return 0, false
	}
	v, err := ParseGatewayDuration(*d)
	if err != nil {
		*errs = append(*errs, field.Invalid(p, string(*d), "must be a Gateway API duration: 1 to 4 number-unit pairs, units h, m, s, ms (e.g. 1m30s)"))
		return 0, false
	}
	return v, true
}

func validateHTTPMatch(m *gwv1.HTTPRouteMatch, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if m.Path != nil {
		errs = append(errs, validatePathMatch(m.Path, p.Child("path"))...)
	}
	errs = append(errs, validateHeaderMatches(headerMatches(m.Headers), p.Child("headers"), true)...)
	qs := make([]headerMatch, len(m.QueryParams))
	for i, q := range m.QueryParams {
		qs[i] = headerMatch{name: string(q.Name), value: q.Value, regex: q.Type != nil && *q.Type == gwv1.QueryParamMatchRegularExpression}
		if q.Type != nil && *q.Type != gwv1.QueryParamMatchExact && !qs[i].regex {
			errs = append(errs, field.NotSupported(p.Child("queryParams").Index(i).Child("type"), string(*q.Type), []string{"Exact", "RegularExpression"}))
		}
	}
	errs = append(errs, validateHeaderMatches(qs, p.Child("queryParams"), false)...)
	if m.Method != nil {
		switch *m.Method {
		case "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH":
		default:
			errs = append(errs, field.NotSupported(p.Child("method"), string(*m.Method),
				[]string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}))
		}
	}
	for i, h := range m.Headers {
		if h.Type != nil && *h.Type != gwv1.HeaderMatchExact && *h.Type != gwv1.HeaderMatchRegularExpression {
			errs = append(errs, field.NotSupported(p.Child("headers").Index(i).Child("type"), string(*h.Type), []string{"Exact", "RegularExpression"}))
		}
	}
	return errs
}

func validatePathMatch(m *gwv1.HTTPPathMatch, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	typ := gwv1.PathMatchPathPrefix
	if m.Type != nil {
		typ = *m.Type
	}
	v := "/"
	if m.Value != nil {
		v = *m.Value
	}
	vp := p.Child("value")
	if len(v) > 1024 {
		errs = append(errs, field.TooLong(vp, v, 1024))
	}
	switch typ {
	case gwv1.PathMatchExact, gwv1.PathMatchPathPrefix:
		switch {
		case !strings.HasPrefix(v, "/"):
			errs = append(errs, field.Invalid(vp, v, "must be an absolute path and start with '/'"))
		case strings.Contains(v, "//"), strings.Contains(v, "/./"), strings.Contains(v, "/../"),
			strings.Contains(v, "%2f"), strings.Contains(v, "%2F"), strings.Contains(v, "#"),
			strings.HasSuffix(v, "/.."), strings.HasSuffix(v, "/."):
			errs = append(errs, field.Invalid(vp, v, "must not contain '//', '/./', '/../', '%2f', '%2F' or '#', nor end with '/..' or '/.'"))
		case !pathCharsRE.MatchString(v):
			errs = append(errs, field.Invalid(vp, v, "must contain only URL path characters or %-escapes"))
		}
	case gwv1.PathMatchRegularExpression:
		if _, err := regexp.Compile(v); err != nil {
			errs = append(errs, field.Invalid(vp, v, "must be an RE2 regular expression: "+err.Error()))
		}
	default:
		errs = append(errs, field.NotSupported(p.Child("type"), string(typ), []string{"Exact", "PathPrefix", "RegularExpression"}))
	}
	return errs
}

// headerMatch is an HTTP or gRPC header or query parameter match.
type headerMatch struct {
	name, value string
	regex       bool
}

func headerMatches(hs []gwv1.HTTPHeaderMatch) []headerMatch {
	out := make([]headerMatch, len(hs))
	for i, h := range hs {
		out[i] = headerMatch{name: string(h.Name), value: h.Value, regex: h.Type != nil && *h.Type == gwv1.HeaderMatchRegularExpression}
	}
	return out
}

// validateHeaderMatches checks header (caseFold: names compare without
// case) or query parameter matches: at most 16, unique names, values set,
// regular expressions that compile.
func validateHeaderMatches(ms []headerMatch, p *field.Path, caseFold bool) field.ErrorList {
	var errs field.ErrorList
	if len(ms) > 16 {
		errs = append(errs, field.TooMany(p, len(ms), 16))
	}
	maxValue := 4096
	if !caseFold {
		maxValue = 1024
	}
	seen := map[string]bool{}
	for i, m := range ms {
		ip := p.Index(i)
		errs = append(errs, gwHeaderName(ip.Child("name"), m.name)...)
		key := m.name
		if caseFold {
			key = strings.ToLower(key)
		}
		if seen[key] {
			errs = append(errs, field.Duplicate(ip.Child("name"), m.name))
		}
		seen[key] = true
		switch {
		case m.value == "":
			errs = append(errs, field.Required(ip.Child("value"), ""))
		case len(m.value) > maxValue:
			errs = append(errs, field.TooLong(ip.Child("value"), m.value, maxValue))
		case m.regex:
			if _, err := regexp.Compile(m.value); err != nil {
				errs = append(errs, field.Invalid(ip.Child("value"), m.value, "must be an RE2 regular expression: "+err.Error()))
			}
		}
	}
	return errs
}

// gwHeaderName checks a header name as the Gateway API's HeaderName type
// does (an RFC 7230 token of at most 256 characters).
func gwHeaderName(p *field.Path, name string) field.ErrorList {
	switch {
	case name == "":
		return field.ErrorList{field.Required(p, "")}
	case len(name) > 256:
		return field.ErrorList{field.TooLong(p, name, 256)}
	case !headerNameRE.MatchString(name):
		return field.ErrorList{field.Invalid(p, name, "must be an HTTP header name (RFC 7230 token characters)")}
	}
	return nil
}

func validateTCPRouteSpec(s *gwv1.TCPRouteSpec, p *field.Path) field.ErrorList {
	errs := validateParentRefs(&s.CommonRouteSpec, p)
	rp := p.Child("rules")
	switch {
	case len(s.Rules) == 0:
		errs = append(errs, field.Required(rp, "exactly one rule"))
	case len(s.Rules) > 1:
		errs = append(errs, field.TooMany(rp, len(s.Rules), 1))
	}
	for i, r := range s.Rules {
		ip := rp.Index(i)
		if r.Name != nil {
			errs = append(errs, dnsSubdomain(ip.Child("name"), string(*r.Name))...)
		}
		bp := ip.Child("backendRefs")
		switch {
		case len(r.BackendRefs) == 0:
			errs = append(errs, field.Required(bp, "at least one backend"))
		case len(r.BackendRefs) > 16:
			errs = append(errs, field.TooMany(bp, len(r.BackendRefs), 16))
		}
		for j := range r.BackendRefs {
			errs = append(errs, validateBackendRef(&r.BackendRefs[j], bp.Index(j))...)
		}
	}
	return errs
}
