package tlsx

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/trellis-mesh/trellis/internal/proxy/matcher"
)

// sanMatcher is one compiled SubjectAltNameMatcher.
type sanMatcher struct {
	typ tlsv3.SubjectAltNameMatcher_SanType
	// dnsExact is set for a DNS matcher with a non-empty exact pattern,
	// which Envoy matches with DNS wildcard rules instead of equality.
	dnsExact string
	str      matcher.String
}

func newSANMatcher(typ tlsv3.SubjectAltNameMatcher_SanType, m *matcherv3.StringMatcher, path string) (sanMatcher, error) {
	switch typ {
	case tlsv3.SubjectAltNameMatcher_DNS, tlsv3.SubjectAltNameMatcher_URI,
		tlsv3.SubjectAltNameMatcher_EMAIL, tlsv3.SubjectAltNameMatcher_IP_ADDRESS:
		return newStringSANMatcher(typ, m, path+".matcher")
	case tlsv3.SubjectAltNameMatcher_SAN_TYPE_UNSPECIFIED:
		return sanMatcher{}, fmt.Errorf("%s.san_type: must be set", path)
	default:
		return sanMatcher{}, fmt.Errorf("%s.san_type: %s is not supported", path, typ)
	}
}

func newStringSANMatcher(typ tlsv3.SubjectAltNameMatcher_SanType, m *matcherv3.StringMatcher, path string) (sanMatcher, error) {
	str, err := matcher.NewString(m)
	if err != nil {
		return sanMatcher{}, fmt.Errorf("%s: %w", path, err)
	}
	sm := sanMatcher{typ: typ, str: str}
	if e, ok := m.GetMatchPattern().(*matcherv3.StringMatcher_Exact); ok && typ == tlsv3.SubjectAltNameMatcher_DNS {
		sm.dnsExact = e.Exact
	}
	return sm, nil
}

func (m *sanMatcher) match(typ tlsv3.SubjectAltNameMatcher_SanType, value string) bool {
	if typ != m.typ {
		return false
	}
	if m.dnsExact != "" {
		return dnsNameMatch(m.dnsExact, value)
	}
	return m.str.Match(value)
}

// matchSANs reports whether any SAN of c matches any matcher (envoy:
// DefaultCertValidator::matchSubjectAltName). A certificate without SANs
// matches nothing.
func matchSANs(c *x509.Certificate, ms []sanMatcher) bool {
	matched := false
	_ = forEachSAN(c, func(typ tlsv3.SubjectAltNameMatcher_SanType, value string) bool {
		for i := range ms {
			if ms[i].match(typ, value) {
				matched = true
				return false
			}
		}
		return true
	})
	return matched
}

var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// forEachSAN calls f with each DNS, URI, email and IP SAN of c, formatted as
// Envoy does (envoy: Utility::generalNameAsString): the raw IA5String bytes
// for the first three, the canonical text form for IPs. It reads the raw
// extension because x509.Certificate.URIs are re-encoded url.URLs. f returns
// false to stop.
func forEachSAN(c *x509.Certificate, f func(tlsv3.SubjectAltNameMatcher_SanType, string) bool) error {
	for _, ext := range c.Extensions {
		if !ext.Id.Equal(oidSubjectAltName) {
			continue
		}
		var seq asn1.RawValue
		rest, err := asn1.Unmarshal(ext.Value, &seq)
		if err != nil || len(rest) > 0 || seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence || !seq.IsCompound {
			return errors.New("malformed subject alternative name extension")
		}
		for in := seq.Bytes; len(in) > 0; {
			var gn asn1.RawValue
			if in, err = asn1.Unmarshal(in, &gn); err != nil {
				return err
			}
			if gn.Class != asn1.ClassContextSpecific {
				continue
			}
			var typ tlsv3.SubjectAltNameMatcher_SanType
			var value string
			switch gn.Tag {
			case 1:
				typ, value = tlsv3.SubjectAltNameMatcher_EMAIL, string(gn.Bytes)
			case 2:
				typ, value = tlsv3.SubjectAltNameMatcher_DNS, string(gn.Bytes)
			case 6:
				typ, value = tlsv3.SubjectAltNameMatcher_URI, string(gn.Bytes)
			case 7:
				ip, ok := netip.AddrFromSlice(gn.Bytes)
				if !ok {
					continue // Envoy skips IPs of other lengths too.
				}
				typ, value = tlsv3.SubjectAltNameMatcher_IP_ADDRESS, ip.String()
			default:
				continue
			}
			if !f(typ, value) {
				return nil
			}
		}
	}
	return nil
}

// dnsNameMatch reports whether dnsName, from config, matches pattern, a DNS
// SAN that may hold a wildcard in its left-most label (RFC 6125 §6.4.3). It
// is envoy's Utility::dnsNameMatch: ASCII case-insensitive; "*.example.com"
// matches "a.example.com" but not "example.com" or "a.b.example.com"; a
// partial label such as "b*z.example.com" matches too; A-labels ("xn--")
// never carry wildcards.
func dnsNameMatch(dnsName, pattern string) bool {
	name, pat := asciiLower(dnsName), asciiLower(pattern)
	if name == pat {
		return true
	}
	patLabel, patRest, ok := strings.Cut(pat, ".")
	if !ok {
		return false
	}
	nameLabel, nameRest, ok := strings.Cut(name, ".")
	if !ok {
		return false
	}
	if strings.Contains(patLabel, "*") && !strings.Contains(patRest, "*") && !strings.HasPrefix(patLabel, "xn--") {
		return nameRest == patRest && labelWildcardMatch(nameLabel, patLabel)
	}
	return false
}

// labelWildcardMatch is envoy's Utility::labelWildcardMatch: pattern holds
// exactly one '*', which stands for zero or more characters.
func labelWildcardMatch(label, pattern string) bool {
	if pattern == "*" {
		return true
	}
	if strings.Count(pattern, "*") != 1 {
		return false
	}
	before, after, _ := strings.Cut(pattern, "*")
	return len(pattern) <= len(label)+1 && strings.HasPrefix(label, before) && strings.HasSuffix(label, after)
}

// asciiLower lower-cases ASCII letters only, leaving other bytes intact
// (strings.ToLower would rewrite invalid UTF-8).
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
