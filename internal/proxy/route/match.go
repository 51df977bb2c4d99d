package route

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/trellis-mesh/trellis/internal/proxy/matcher"
)

type pathKind uint8

const (
	pathPrefix pathKind = iota
	pathExact
	pathRegex
	pathSeparated
)

type routeMatch struct {
	kind          pathKind
	value         string
	re            *regexp.Regexp
	caseSensitive bool
	headers       []headerMatch
	query         []queryMatch
	grpc          bool
}

type headerMatch struct {
	name    string // canonical header name, or a pseudo-header (":authority")
	present *bool
	str     matcher.String
	hasStr  bool
	invert  bool
}

type queryMatch struct {
	name    string
	present bool
	str     matcher.String
	hasStr  bool
}

func compileMatch(m *routev3.RouteMatch) (routeMatch, error) {
	rm := routeMatch{caseSensitive: m.GetCaseSensitive() == nil || m.GetCaseSensitive().GetValue()}
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		rm.kind, rm.value = pathPrefix, p.Prefix
	case *routev3.RouteMatch_Path:
		rm.kind, rm.value = pathExact, p.Path
	case *routev3.RouteMatch_PathSeparatedPrefix:
		rm.kind, rm.value = pathSeparated, p.PathSeparatedPrefix
	case *routev3.RouteMatch_SafeRegex:
		re, err := matcher.NewRegex(p.SafeRegex)
		if err != nil {
			return rm, fmt.Errorf("safe_regex: %w", err)
		}
		if !rm.caseSensitive {
			if re, err = regexp.Compile(`(?i)` + re.String()); err != nil {
				return rm, fmt.Errorf("safe_regex: %w", err)
			}
		}
		rm.kind, rm.re = pathRegex, re
	default:
		return rm, errors.New("path_specifier: one of prefix, path, safe_regex, path_separated_prefix is required")
	}
	for i, h := range m.GetHeaders() {
		hm, err := compileHeaderMatch(h)
		if err != nil {
			return rm, fmt.Errorf("headers[%d]: %w", i, err)
		}
		rm.headers = append(rm.headers, hm)
	}
	for i, q := range m.GetQueryParameters() {
		qm := queryMatch{name: q.GetName()}
		switch {
		case q.GetStringMatch() != nil:
			s, err := matcher.NewString(q.GetStringMatch())
			if err != nil {
				return rm, fmt.Errorf("query_parameters[%d].string_match: %w", i, err)
			}
			qm.str, qm.hasStr = s, true
		case q.GetPresentMatch():
			qm.present = true
		default:
			return rm, fmt.Errorf("query_parameters[%d]: one of string_match, present_match is required", i)
		}
		rm.query = append(rm.query, qm)
	}
	rm.grpc = m.GetGrpc() != nil
	return rm, nil
}

func compileHeaderMatch(h *routev3.HeaderMatcher) (headerMatch, error) {
	name := h.GetName()
	if !strings.HasPrefix(name, ":") {
		name = http.CanonicalHeaderKey(name)
	}
	hm := headerMatch{name: name, invert: h.GetInvertMatch()}
	var sm *matcherv3.StringMatcher
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case nil:
		t := true
		hm.present = &t
		return hm, nil
	case *routev3.HeaderMatcher_PresentMatch:
		v := s.PresentMatch
		hm.present = &v
		return hm, nil
	case *routev3.HeaderMatcher_ExactMatch:
		//lint:ignore SA1019 Envoy still honours this deprecated field; so does Trellis.
		sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s.ExactMatch}}
	case *routev3.HeaderMatcher_PrefixMatch:
		//lint:ignore SA1019 Envoy still honours this deprecated field; so does Trellis.
		sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: s.PrefixMatch}}
	case *routev3.HeaderMatcher_SuffixMatch:
		//lint:ignore SA1019 Envoy still honours this deprecated field; so does Trellis.
		sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: s.SuffixMatch}}
	case *routev3.HeaderMatcher_ContainsMatch:
		//lint:ignore SA1019 Envoy still honours this deprecated field; so does Trellis.
		sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: s.ContainsMatch}}
	case *routev3.HeaderMatcher_SafeRegexMatch:
		//lint:ignore SA1019 Envoy still honours this deprecated field; so does Trellis.
		sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: s.SafeRegexMatch}}
	case *routev3.HeaderMatcher_StringMatch:
		sm = s.StringMatch
	default:
		return hm, fmt.Errorf("header_match_specifier %T: not supported", s)
	}
	str, err := matcher.NewString(sm)
	if err != nil {
		return hm, err
	}
	hm.str, hm.hasStr = str, true
	return hm, nil
}

func (m *routeMatch) matches(r *http.Request, path string) bool {
	switch m.kind {
	case pathPrefix:
		if !hasPrefix(path, m.value, m.caseSensitive) {
			return false
		}
	case pathExact:
		if m.caseSensitive && path != m.value || !m.caseSensitive && !strings.EqualFold(path, m.value) {
			return false
		}
	case pathSeparated:
		if !hasPrefix(path, m.value, m.caseSensitive) || len(path) > len(m.value) && path[len(m.value)] != '/' {
			return false
		}
	case pathRegex:
		if !m.re.MatchString(path) {
			return false
		}
	}
	if m.grpc && !strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		return false
	}
	for i := range m.headers {
		if !m.headers[i].matches(r) {
			return false
		}
	}
	for i := range m.query {
		if !m.query[i].matches(r.URL.RawQuery) {
			return false
		}
	}
	return true
}

func hasPrefix(s, p string, caseSensitive bool) bool {
	if caseSensitive {
		return strings.HasPrefix(s, p)
	}
	return len(s) >= len(p) && strings.EqualFold(s[:len(p)], p)
}

// headerValue returns a request header (or pseudo-header) value. Several
// values are joined with "," as Envoy does for matching.
func headerValue(r *http.Request, name string) (string, bool) {
	switch name {
	case ":authority":
		return r.Host, true
	case ":method":
		return r.Method, true
	case ":path":
		return r.URL.RequestURI(), true
	case ":scheme":
		if r.TLS != nil {
			return "https", true
		}
		return "http", true
	}
	vs, ok := r.Header[name]
	if !ok {
		return "", false
	}
	if len(vs) == 1 {
		return vs[0], true
	}
	return strings.Join(vs, ","), true
}

func (h *headerMatch) matches(r *http.Request) bool {
	v, ok := headerValue(r, h.name)
	var res bool
	switch {
	case h.present != nil:
		res = ok == *h.present
	case !ok:
		// A missing header never matches a value matcher, inverted or not
		// (Envoy: treat_missing_header_as_empty defaults to false).
		return false
	default:
		res = h.str.Match(v)
	}
	return res != h.invert
}

func (q *queryMatch) matches(raw string) bool {
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(kv, "=")
		if k != q.name {
			continue
		}
		if q.present {
			return true
		}
		if strings.ContainsAny(v, "%+") {
			if dv, err := queryUnescape(v); err == nil {
				v = dv
			}
		}
		return q.str.Match(v)
	}
	return false
}

// HeaderMatchers is a compiled list of Envoy HeaderMatchers, all of which
// must match (filters use it, e.g. the fault filter's headers).
type HeaderMatchers []headerMatch

// NewHeaderMatchers compiles ms; errors name the index.
func NewHeaderMatchers(ms []*routev3.HeaderMatcher) (HeaderMatchers, error) {
	var out HeaderMatchers
	for i, m := range ms {
		hm, err := compileHeaderMatch(m)
		if err != nil {
			return nil, fmt.Errorf("headers[%d]: %w", i, err)
		}
		out = append(out, hm)
	}
	return out, nil
}

// Match reports whether every matcher matches r.
func (hs HeaderMatchers) Match(r *http.Request) bool {
	for i := range hs {
		if !hs[i].matches(r) {
			return false
		}
	}
	return true
}
