package translator

import (
	"regexp"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// headerMods applies a RequestHeaderModifier or ResponseHeaderModifier:
// set overwrites, add appends, remove removes.
func headerMods(f *gwv1.HTTPHeaderFilter, add []*corev3.HeaderValueOption, remove []string) ([]*corev3.HeaderValueOption, []string) {
	if f == nil {
		return add, remove
	}
	for _, h := range f.Set {
		add = append(add, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: string(h.Name), Value: h.Value},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	for _, h := range f.Add {
		add = append(add, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: string(h.Name), Value: h.Value},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
		})
	}
	return add, append(remove, f.Remove...)
}

// prefixOf is the path prefix a ReplacePrefixMatch replaces: the route's
// prefix match without its trailing slash.
func prefixOf(m *match) string {
	if m.pathKind != pathPrefix {
		return ""
	}
	return m.path
}

// rewrite applies a URLRewrite filter: hostname → host_rewrite_literal,
// ReplaceFullPath → regex_rewrite of the whole path, ReplacePrefixMatch →
// prefix_rewrite (a regex_rewrite when the replacement is "/", so that
// "/api/x" becomes "/x" and not "//x").
func rewrite(a *routev3.RouteAction, f *gwv1.HTTPURLRewriteFilter, m *match) {
	if f == nil {
		return
	}
	if f.Hostname != nil {
		a.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: string(*f.Hostname)}
	}
	p := f.Path
	if p == nil {
		return
	}
	switch {
	case p.Type == gwv1.FullPathHTTPPathModifier && p.ReplaceFullPath != nil:
		a.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{Pattern: &matcherv3.RegexMatcher{Regex: "^.*$"}, Substitution: *p.ReplaceFullPath}
	case p.Type == gwv1.PrefixMatchHTTPPathModifier && p.ReplacePrefixMatch != nil:
		to := *p.ReplacePrefixMatch
		if strings.TrimRight(to, "/") == "" {
			a.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{
				Pattern:      &matcherv3.RegexMatcher{Regex: "^" + regexp.QuoteMeta(prefixOf(m)) + `/*`},
				Substitution: "/",
			}
		} else {
			a.PrefixRewrite = to
		}
	}
}

// redirect builds a RequestRedirect's RedirectAction (default status 302,
// as the Gateway API says; Envoy's default would be 301).
func redirect(f *gwv1.HTTPRequestRedirectFilter, m *match) *routev3.RedirectAction {
	r := &routev3.RedirectAction{ResponseCode: routev3.RedirectAction_FOUND}
	if f == nil {
		return r
	}
	if f.Scheme != nil {
		r.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: *f.Scheme}
	}
	if f.Hostname != nil {
		r.HostRedirect = string(*f.Hostname)
	}
	if f.Port != nil {
		r.PortRedirect = uint32(*f.Port)
	}
	if p := f.Path; p != nil {
		switch {
		case p.Type == gwv1.FullPathHTTPPathModifier && p.ReplaceFullPath != nil:
			r.PathRewriteSpecifier = &routev3.RedirectAction_PathRedirect{PathRedirect: *p.ReplaceFullPath}
		case p.Type == gwv1.PrefixMatchHTTPPathModifier && p.ReplacePrefixMatch != nil && prefixOf(m) != "":
			r.PathRewriteSpecifier = &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: *p.ReplacePrefixMatch}
		}
	}
	if f.StatusCode != nil {
		switch *f.StatusCode {
		case 301:
			r.ResponseCode = routev3.RedirectAction_MOVED_PERMANENTLY
		case 303:
			r.ResponseCode = routev3.RedirectAction_SEE_OTHER
		case 307:
			r.ResponseCode = routev3.RedirectAction_TEMPORARY_REDIRECT
		case 308:
			r.ResponseCode = routev3.RedirectAction_PERMANENT_REDIRECT
		}
	}
	return r
}

// mirror adds a RequestMirror: percent or fraction become the mirror's
// runtime_fraction (none: every request). A mirror to a backend that does
// not resolve is left out.
func (b *builder) mirror(a *routev3.RouteAction, f *gwv1.HTTPRequestMirrorFilter, routeNS string) {
	if f == nil {
		return
	}
	name, ok := b.backend(f.BackendRef, routeNS)
	if !ok {
		return
	}
	mp := &routev3.RouteAction_RequestMirrorPolicy{Cluster: name}
	switch {
	case f.Percent != nil:
		mp.RuntimeFraction = &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{
			Numerator: uint32(*f.Percent), Denominator: typev3.FractionalPercent_HUNDRED}}
	case f.Fraction != nil:
		den := int64(100)
		if f.Fraction.Denominator != nil && *f.Fraction.Denominator > 0 {
			den = int64(*f.Fraction.Denominator)
		}
		mp.RuntimeFraction = &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{
			Numerator: uint32(int64(f.Fraction.Numerator) * 1_000_000 / den), Denominator: typev3.FractionalPercent_MILLION}}
	}
	a.RequestMirrorPolicies = append(a.RequestMirrorPolicies, mp)
}
