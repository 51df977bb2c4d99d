package tlsx

import (
	"testing"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/trellis-mesh/trellis/internal/testutil/certs"
)

func TestDNSNameMatch(t *testing.T) {
	// Expectations follow envoy's Utility::dnsNameMatch.
	tests := []struct {
		name, dnsName, pattern string
		want                   bool
	}{
		{name: "equal", dnsName: "lyft.com", pattern: "lyft.com", want: true},
		{name: "case-insensitive", dnsName: "LYFT.com", pattern: "lyft.COM", want: true},
		{name: "wildcard", dnsName: "a.lyft.com", pattern: "*.lyft.com", want: true},
		{name: "wildcard one label only", dnsName: "a.b.lyft.com", pattern: "*.lyft.com", want: false},
		{name: "wildcard needs a label", dnsName: "lyft.com", pattern: "*.lyft.com", want: false},
		{name: "wildcard suffix differs", dnsName: "a.lyft.org", pattern: "*.lyft.com", want: false},
		{name: "partial wildcard prefix", dnsName: "foo-bar.lyft.com", pattern: "foo*.lyft.com", want: true},
		{name: "partial wildcard suffix", dnsName: "bar-foo.lyft.com", pattern: "*foo.lyft.com", want: true},
		{name: "partial wildcard middle", dnsName: "foo-x-bar.lyft.com", pattern: "foo*bar.lyft.com", want: true},
		{name: "partial wildcard empty middle", dnsName: "foobar.lyft.com", pattern: "foo*bar.lyft.com", want: true},
		{name: "partial wildcard too short", dnsName: "fobar.lyft.com", pattern: "foo*bar.lyft.com", want: false},
		{name: "two wildcards", dnsName: "a-b.lyft.com", pattern: "*-*.lyft.com", want: false},
		{name: "wildcard outside first label", dnsName: "a.b.com", pattern: "a.*.com", want: false},
		{name: "A-label wildcard refused", dnsName: "xn--abc.lyft.com", pattern: "xn--*.lyft.com", want: false},
		{name: "config wildcard is literal", dnsName: "*.lyft.com", pattern: "a.lyft.com", want: false},
		{name: "single label", dnsName: "lyft", pattern: "*", want: false},
		{name: "non-ASCII bytes compared as is", dnsName: "\xff.lyft.com", pattern: "\xff.LYFT.com", want: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := dnsNameMatch(tc.dnsName, tc.pattern); got != tc.want {
				t.Errorf("dnsNameMatch(%q, %q) = %v, want %v", tc.dnsName, tc.pattern, got, tc.want)
			}
		})
	}
}

func TestForEachSAN(t *testing.T) {
	ca := certs.NewCA(t, "mesh")
	leaf := ca.Issue(t, certs.LeafOptions{
		DNSNames: []string{"a.example.com"},
		Emails:   []string{"ops@example.com"},
		IPs:      []string{"10.1.2.3", "2001:db8::1"},
		URIs:     []string{"spiffe://example.org/ns/a/sa/b"},
	})
	type entry struct {
		Type  tlsv3.SubjectAltNameMatcher_SanType
		Value string
	}
	var got []entry
	if err := forEachSAN(leaf.TLS.Leaf, func(typ tlsv3.SubjectAltNameMatcher_SanType, v string) bool {
		got = append(got, entry{typ, v})
		return true
	}); err != nil {
		t.Fatal(err)
	}
	// crypto/x509 encodes DNS, email, IP, then URI SANs.
	want := []entry{
		{tlsv3.SubjectAltNameMatcher_DNS, "a.example.com"},
		{tlsv3.SubjectAltNameMatcher_EMAIL, "ops@example.com"},
		{tlsv3.SubjectAltNameMatcher_IP_ADDRESS, "10.1.2.3"},
		{tlsv3.SubjectAltNameMatcher_IP_ADDRESS, "2001:db8::1"},
		{tlsv3.SubjectAltNameMatcher_URI, "spiffe://example.org/ns/a/sa/b"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("forEachSAN() mismatch (-want +got):\n%s", diff)
	}
}
