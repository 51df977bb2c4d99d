package trace

import (
	"net/http"
	"testing"
)

func TestTags(t *testing.T) {
	t.Setenv("TRELLIS_TEST_ZONE", "eu-1")
	h := http.Header{"X-Tenant": {"acme"}}
	for _, tc := range []struct {
		name      string
		tag       Tag
		h         http.Header
		want      string
		wantFound bool
	}{
		{name: "literal", tag: LiteralTag("mesh", "default"), want: "default", wantFound: true},
		{name: "environment", tag: EnvironmentTag("zone", "TRELLIS_TEST_ZONE", "none"), want: "eu-1", wantFound: true},
		{name: "environment unset uses default", tag: EnvironmentTag("zone", "TRELLIS_TEST_UNSET", "none"), want: "none", wantFound: true},
		{name: "environment unset without default", tag: EnvironmentTag("zone", "TRELLIS_TEST_UNSET", "")},
		{name: "header", tag: HeaderTag("tenant", "x-tenant", "none"), h: h, want: "acme", wantFound: true},
		{name: "header absent uses default", tag: HeaderTag("tenant", "x-other", "none"), h: h, want: "none", wantFound: true},
		{name: "header absent without default", tag: HeaderTag("tenant", "x-other", ""), h: h},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, ok := tc.tag.attr(tc.h)
			if ok != tc.wantFound || (ok && (a.Value.AsString() != tc.want || string(a.Key) != tc.tag.Name)) {
				t.Fatalf("attr = %v, %v; want %q, %v", a, ok, tc.want, tc.wantFound)
			}
		})
	}
}
