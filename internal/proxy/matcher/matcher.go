// Package matcher compiles Envoy's type.matcher.v3 string and regex matchers
// into immutable values that match without allocating. It is shared by the
// route table, header matching and TLS SAN checks.
package matcher

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// String is a compiled envoy.type.matcher.v3.StringMatcher. The zero value
// matches nothing.
type String struct {
	kind       kind
	value      string
	ignoreCase bool
	re         *regexp.Regexp
}

type kind uint8

const (
	none kind = iota
	exact
	prefix
	suffix
	contains
	regex
)

// NewString compiles m. Errors name the offending field relative to m.
func NewString(m *matcherv3.StringMatcher) (String, error) {
	if m == nil {
		return String{}, errors.New("not set")
	}
	s := String{ignoreCase: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		s.kind, s.value = exact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		s.kind, s.value = prefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		s.kind, s.value = suffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		s.kind, s.value = contains, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := NewRegex(p.SafeRegex)
		if err != nil {
			return String{}, fmt.Errorf("safe_regex: %w", err)
		}
		if s.ignoreCase {
			return String{}, errors.New("ignore_case: not supported with safe_regex (use (?i) in the regex)")
		}
		s.kind, s.re = regex, re
	default:
		return String{}, errors.New("match_pattern: one of exact, prefix, suffix, contains, safe_regex is required")
	}
	if s.ignoreCase {
		s.value = strings.ToLower(s.value)
	}
	return s, nil
}

// Exact returns a matcher for exactly v.
func Exact(v string) String { return String{kind: exact, value: v} }

// Match reports whether v matches.
func (s String) Match(v string) bool {
	switch s.kind {
	case exact:
		if s.ignoreCase {
			return strings.EqualFold(v, s.value)
		}
		return v == s.value
	case prefix:
		if s.ignoreCase {
			return len(v) >= len(s.value) && strings.EqualFold(v[:len(s.value)], s.value)
		}
		return strings.HasPrefix(v, s.value)
	case suffix:
		if s.ignoreCase {
			return len(v) >= len(s.value) && strings.EqualFold(v[len(v)-len(s.value):], s.value)
		}
		return strings.HasSuffix(v, s.value)
	case contains:
		if s.ignoreCase {
			return containsFold(v, s.value)
		}
		return strings.Contains(v, s.value)
	case regex:
		return s.re.MatchString(v)
	}
	return false
}

func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// NewRegex compiles an envoy.type.matcher.v3.RegexMatcher. Envoy's regexes are
// RE2 and must match the whole input, so the result is anchored.
func NewRegex(m *matcherv3.RegexMatcher) (*regexp.Regexp, error) {
	if m == nil {
		return nil, errors.New("not set")
	}
	re, err := regexp.Compile(`^(?:` + m.GetRegex() + `)$`)
	if err != nil {
		return nil, fmt.Errorf("regex: %w", err)
	}
	return re, nil
}

// NewRegexUnanchored compiles a RegexMatcher for search-and-replace use
// (Envoy's regex_rewrite), where matches may be partial.
func NewRegexUnanchored(m *matcherv3.RegexMatcher) (*regexp.Regexp, error) {
	if m == nil {
		return nil, errors.New("not set")
	}
	re, err := regexp.Compile(m.GetRegex())
	if err != nil {
		return nil, fmt.Errorf("regex: %w", err)
	}
	return re, nil
}
