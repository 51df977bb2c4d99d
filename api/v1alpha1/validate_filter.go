package v1alpha1

import (
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

var preciseHostnameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// HTTPFilterTypes lists the HTTPRoute filter types Trellis implements.
// CORS, ExternalAuth and ExtensionRef are refused rather than ignored.
func HTTPFilterTypes() []gwv1.HTTPRouteFilterType {
	return []gwv1.HTTPRouteFilterType{
		gwv1.HTTPRouteFilterRequestHeaderModifier, gwv1.HTTPRouteFilterResponseHeaderModifier,
		gwv1.HTTPRouteFilterRequestMirror, gwv1.HTTPRouteFilterRequestRedirect, gwv1.HTTPRouteFilterURLRewrite,
	}
}

// GRPCFilterTypes lists the GRPCRoute filter types Trellis implements.
func GRPCFilterTypes() []gwv1.GRPCRouteFilterType {
	return []gwv1.GRPCRouteFilterType{
		gwv1.GRPCRouteFilterRequestHeaderModifier, gwv1.GRPCRouteFilterResponseHeaderModifier,
		gwv1.GRPCRouteFilterRequestMirror,
	}
}

// unionField is one member of a filter union: the field named for type
// typ, and whether the document sets it.
type unionField struct {
	name string
	typ  string
	set  bool
}

// validateUnion checks that the field matching the discriminator is set
// and no other.
func validateUnion(typ string, fs []unionField, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, f := range fs {
		switch {
		case f.typ == typ && !f.set:
			errs = append(errs, field.Required(p.Child(f.name), "required when type is "+typ))
		case f.typ != typ && f.set:
			errs = append(errs, field.Forbidden(p.Child(f.name), "must be unset when type is "+typ))
		}
	}
	return errs
}

func validateHTTPFilters(fs []gwv1.HTTPRouteFilter, matches []gwv1.HTTPRouteMatch, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(fs) > 16 {
		errs = append(errs, field.TooMany(p, len(fs), 16))
	}
	seen := map[gwv1.HTTPRouteFilterType]bool{}
	for i := range fs {
		f := &fs[i]
		ip := p.Index(i)
		if !slices.Contains(HTTPFilterTypes(), f.Type) {
			errs = append(errs, field.NotSupported(ip.Child("type"), string(f.Type), HTTPFilterTypes()))
			continue
		}
		if seen[f.Type] && f.Type != gwv1.HTTPRouteFilterRequestMirror {
			errs = append(errs, field.Duplicate(ip.Child("type"), string(f.Type)))
		}
		seen[f.Type] = true
		errs = append(errs, validateUnion(string(f.Type), []unionField{
			{"requestHeaderModifier", "RequestHeaderModifier", f.RequestHeaderModifier != nil},
			{"responseHeaderModifier", "ResponseHeaderModifier", f.ResponseHeaderModifier != nil},
			{"requestMirror", "RequestMirror", f.RequestMirror != nil},
			{"requestRedirect", "RequestRedirect", f.RequestRedirect != nil},
			{"urlRewrite", "URLRewrite", f.URLRewrite != nil},
			{"cors", "CORS", f.CORS != nil},
			{"externalAuth", "ExternalAuth", f.ExternalAuth != nil},
			{"extensionRef", "ExtensionRef", f.ExtensionRef != nil},
		}, ip)...)
		if f.RequestHeaderModifier != nil {
			errs = append(errs, validateHeaderFilter(f.RequestHeaderModifier, ip.Child("requestHeaderModifier"))...)
		}
		if f.ResponseHeaderModifier != nil {
			errs = append(errs, validateHeaderFilter(f.ResponseHeaderModifier, ip.Child("responseHeaderModifier"))...)
		}
		if f.RequestMirror != nil {
			errs = append(errs, validateMirror(f.RequestMirror, ip.Child("requestMirror"))...)
		}
		if r := f.RequestRedirect; r != nil {
			rp := ip.Child("requestRedirect")
			if r.Scheme != nil && *r.Scheme != "http" && *r.Scheme != "https" {
				errs = append(errs, field.NotSupported(rp.Child("scheme"), *r.Scheme, []string{"http", "https"}))
			}
			errs = append(errs, preciseHostname(rp.Child("hostname"), r.Hostname)...)
			errs = append(errs, validatePathModifier(r.Path, matches, rp.Child("path"))...)
			if r.Port != nil {
				errs = append(errs, port(rp.Child("port"), *r.Port)...)
			}
			if c := r.StatusCode; c != nil && !slices.Contains([]int{301, 302, 303, 307, 308}, *c) {
				errs = append(errs, field.NotSupported(rp.Child("statusCode"), int64(*c), []string{"301", "302", "303", "307", "308"}))
			}
		}
		if u := f.URLRewrite; u != nil {
			up := ip.Child("urlRewrite")
			errs = append(errs, preciseHostname(up.Child("hostname"), u.Hostname)...)
			errs = append(errs, validatePathModifier(u.Path, matches, up.Child("path"))...)
		}
	}
	if seen[gwv1.HTTPRouteFilterRequestRedirect] && seen[gwv1.HTTPRouteFilterURLRewrite] {
		errs = append(errs, field.Forbidden(p, "RequestRedirect and URLRewrite filters are exclusive"))
	}
	return errs
}

func preciseHostname(p *field.Path, h *gwv1.PreciseHostname) field.ErrorList {
	if h == nil {
		return nil
	}
	if len(*h) > 253 || !preciseHostnameRE.MatchString(string(*h)) {
		return field.ErrorList{field.Invalid(p, string(*h), "must be a lower-case DNS name")}
	}
	return nil
}

// validatePathModifier checks a URLRewrite or RequestRedirect path: the
// field for its type set and only it, and ReplacePrefixMatch only on a
// rule with exactly one PathPrefix match.
func validatePathModifier(m *gwv1.HTTPPathModifier, matches []gwv1.HTTPRouteMatch, p *field.Path) field.ErrorList {
	if m == nil {
		return nil
	}
	var errs field.ErrorList
	switch m.Type {
	case gwv1.FullPathHTTPPathModifier, gwv1.PrefixMatchHTTPPathModifier:
	default:
		return field.ErrorList{field.NotSupported(p.Child("type"), string(m.Type), []string{"ReplaceFullPath", "ReplacePrefixMatch"})}
	}
	errs = append(errs, validateUnion(string(m.Type), []unionField{
		{"replaceFullPath", "ReplaceFullPath", m.ReplaceFullPath != nil},
		{"replacePrefixMatch", "ReplacePrefixMatch", m.ReplacePrefixMatch != nil},
	}, p)...)
	for _, v := range []struct {
		name string
		v    *string
	}{{"replaceFullPath", m.ReplaceFullPath}, {"replacePrefixMatch", m.ReplacePrefixMatch}} {
		if v.v != nil && len(*v.v) > 1024 {
			errs = append(errs, field.TooLong(p.Child(v.name), *v.v, 1024))
		}
	}
	if m.Type == gwv1.PrefixMatchHTTPPathModifier && !onePrefixMatch(matches) {
		errs = append(errs, field.Invalid(p.Child("type"), string(m.Type), "ReplacePrefixMatch needs the rule to have exactly one match, of type PathPrefix"))
	}
	return errs
}

func onePrefixMatch(ms []gwv1.HTTPRouteMatch) bool {
	switch len(ms) {
	case 0:
		return true // defaults to one PathPrefix "/" match
	case 1:
		return ms[0].Path == nil || ms[0].Path.Type == nil || *ms[0].Path.Type == gwv1.PathMatchPathPrefix
	}
	return false
}

func validateHeaderFilter(h *gwv1.HTTPHeaderFilter, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, l := range []struct {
		name string
		hs   []gwv1.HTTPHeader
	}{{"set", h.Set}, {"add", h.Add}} {
		lp := p.Child(l.name)
		if len(l.hs) > 16 {
			errs = append(errs, field.TooMany(lp, len(l.hs), 16))
		}
		seen := map[string]bool{}
		for i, hd := range l.hs {
			ip := lp.Index(i)
			errs = append(errs, gwHeaderName(ip.Child("name"), string(hd.Name))...)
			if k := strings.ToLower(string(hd.Name)); seen[k] {
				errs = append(errs, field.Duplicate(ip.Child("name"), string(hd.Name)))
			} else {
				seen[k] = true
			}
			switch {
			case hd.Value == "":
				errs = append(errs, field.Required(ip.Child("value"), ""))
			case len(hd.Value) > 4096:
				errs = append(errs, field.TooLong(ip.Child("value"), hd.Value, 4096))
			}
		}
	}
	rp := p.Child("remove")
	if len(h.Remove) > 16 {
		errs = append(errs, field.TooMany(rp, len(h.Remove), 16))
	}
	seen := map[string]bool{}
	for i, name := range h.Remove {
		errs = append(errs, gwHeaderName(rp.Index(i), name)...)
		if k := strings.ToLower(name); seen[k] {
			errs = append(errs, field.Duplicate(rp.Index(i), name))
		} else {
			seen[k] = true
		}
	}
	return errs
}

func validateMirror(m *gwv1.HTTPRequestMirrorFilter, p *field.Path) field.ErrorList {
	errs := validateBackendObjectRef(&m.BackendRef, p.Child("backendRef"))
	if m.Percent != nil && m.Fraction != nil {
		errs = append(errs, field.Forbidden(p, "only one of percent or fraction may be set"))
	}
	if v := m.Percent; v != nil && (*v < 0 || *v > 100) {
		errs = append(errs, field.Invalid(p.Child("percent"), *v, "must be between 0 and 100, inclusive"))
	}
	if f := m.Fraction; f != nil {
		fp := p.Child("fraction")
		den := int32(100)
		if f.Denominator != nil {
			den = *f.Denominator
		}
		switch {
		case f.Numerator < 0:
			errs = append(errs, field.Invalid(fp.Child("numerator"), f.Numerator, "must be >= 0"))
		case den < 1:
			errs = append(errs, field.Invalid(fp.Child("denominator"), den, "must be >= 1"))
		case f.Numerator > den:
			errs = append(errs, field.Invalid(fp.Child("numerator"), f.Numerator, "must be <= denominator"))
		}
	}
	return errs
}

func validateGRPCRouteSpec(s *gwv1.GRPCRouteSpec, p *field.Path) field.ErrorList {
	errs := validateParentRefs(&s.CommonRouteSpec, p)
	errs = append(errs, validateHostnames(s.Hostnames, p.Child("hostnames"))...)
	rp := p.Child("rules")
	matches := 0
	names := make([]*gwv1.SectionName, len(s.Rules))
	for i := range s.Rules {
		r := &s.Rules[i]
		names[i] = r.Name
		matches += len(r.Matches)
		errs = append(errs, validateGRPCRule(r, rp.Index(i))...)
	}
	errs = append(errs, validateRuleCount(len(s.Rules), matches, rp)...)
	errs = append(errs, validateRuleNames(names, rp)...)
	return errs
}

func validateGRPCRule(r *gwv1.GRPCRouteRule, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	mp := p.Child("matches")
	if len(r.Matches) > 64 {
		errs = append(errs, field.TooMany(mp, len(r.Matches), 64))
	}
	for i, m := range r.Matches {
		ip := mp.Index(i)
		if mm := m.Method; mm != nil {
			errs = append(errs, validateGRPCMethod(mm, ip.Child("method"))...)
		}
		hs := make([]headerMatch, len(m.Headers))
		for j, h := range m.Headers {
			hs[j] = headerMatch{name: string(h.Name), value: h.Value, regex: h.Type != nil && *h.Type == gwv1.GRPCHeaderMatchRegularExpression}
			if h.Type != nil && *h.Type != gwv1.GRPCHeaderMatchExact && !hs[j].regex {
				errs = append(errs, field.NotSupported(ip.Child("headers").Index(j).Child("type"), string(*h.Type), []string{"Exact", "RegularExpression"}))
			}
		}
		errs = append(errs, validateHeaderMatches(hs, ip.Child("headers"), true)...)
	}
	errs = append(errs, validateGRPCFilters(r.Filters, p.Child("filters"))...)
	bp := p.Child("backendRefs")
	if len(r.BackendRefs) > 16 {
		errs = append(errs, field.TooMany(bp, len(r.BackendRefs), 16))
	}
	for i := range r.BackendRefs {
		b := &r.BackendRefs[i]
		errs = append(errs, validateBackendRef(&b.BackendRef, bp.Index(i))...)
		errs = append(errs, validateGRPCFilters(b.Filters, bp.Index(i).Child("filters"))...)
	}
	if r.SessionPersistence != nil {
		errs = append(errs, sessionPersistenceUnsupported(p.Child("sessionPersistence")))
	}
	return errs
}

func validateGRPCMethod(m *gwv1.GRPCMethodMatch, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	typ := gwv1.GRPCMethodMatchExact
	if m.Type != nil {
		typ = *m.Type
	}
	if m.Service == nil && m.Method == nil {
		errs = append(errs, field.Required(p, "service, method or both"))
	}
	for _, v := range []struct {
		name string
		v    *string
		re   *regexp.Regexp
	}{{"service", m.Service, grpcServiceRE}, {"method", m.Method, grpcMethodRE}} {
		if v.v == nil {
			continue
		}
		vp := p.Child(v.name)
		switch {
		case len(*v.v) > 1024:
			errs = append(errs, field.TooLong(vp, *v.v, 1024))
		case typ == gwv1.GRPCMethodMatchExact && !v.re.MatchString(*v.v):
			errs = append(errs, field.Invalid(vp, *v.v, "must match "+v.re.String()))
		case typ == gwv1.GRPCMethodMatchRegularExpression:
			if _, err := regexp.Compile(*v.v); err != nil {
				errs = append(errs, field.Invalid(vp, *v.v, "must be an RE2 regular expression: "+err.Error()))
			}
		}
	}
	if typ != gwv1.GRPCMethodMatchExact && typ != gwv1.GRPCMethodMatchRegularExpression {
		errs = append(errs, field.NotSupported(p.Child("type"), string(typ), []string{"Exact", "RegularExpression"}))
	}
	return errs
}

func validateGRPCFilters(fs []gwv1.GRPCRouteFilter, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(fs) > 16 {
		errs = append(errs, field.TooMany(p, len(fs), 16))
	}
	seen := map[gwv1.GRPCRouteFilterType]bool{}
	for i := range fs {
		f := &fs[i]
		ip := p.Index(i)
		if !slices.Contains(GRPCFilterTypes(), f.Type) {
			errs = append(errs, field.NotSupported(ip.Child("type"), string(f.Type), GRPCFilterTypes()))
			continue
		}
		if seen[f.Type] && f.Type != gwv1.GRPCRouteFilterRequestMirror {
			errs = append(errs, field.Duplicate(ip.Child("type"), string(f.Type)))
		}
		seen[f.Type] = true
		errs = append(errs, validateUnion(string(f.Type), []unionField{
			{"requestHeaderModifier", "RequestHeaderModifier", f.RequestHeaderModifier != nil},
			{"responseHeaderModifier", "ResponseHeaderModifier", f.ResponseHeaderModifier != nil},
			{"requestMirror", "RequestMirror", f.RequestMirror != nil},
			{"extensionRef", "ExtensionRef", f.ExtensionRef != nil},
		}, ip)...)
		if f.RequestHeaderModifier != nil {
			errs = append(errs, validateHeaderFilter(f.RequestHeaderModifier, ip.Child("requestHeaderModifier"))...)
		}
		if f.ResponseHeaderModifier != nil {
			errs = append(errs, validateHeaderFilter(f.ResponseHeaderModifier, ip.Child("responseHeaderModifier"))...)
		}
		if f.RequestMirror != nil {
			errs = append(errs, validateMirror(f.RequestMirror, ip.Child("requestMirror"))...)
		}
	}
	return errs
}
