package v1alpha1_test

import (
	"slices"
	"strings"
	"testing"

	api "github.com/trellis-mesh/trellis/api/v1alpha1"
)

func TestValidateMeshTap(t *testing.T) {
	redact := func(h ...string) func(*api.Mesh) {
		return func(m *api.Mesh) { m.Spec.Tap = &api.MeshTap{RedactHeaders: h} }
	}
	many := make([]string, api.MaxTapRedactHeaders+1)
	for i := range many {
		many[i] = "x-h" + strings.Repeat("a", i)
	}
	runValidate(t, []vcase{
		{"names", mesh(redact("X-Session-Token", "x-tenant")), nil},
		{"empty list", mesh(redact()), nil},
		{"empty name", mesh(redact("")), []string{`spec.tap.redactHeaders[0]: Required value: a header name`}},
		{"not a token", mesh(redact("x-ok", "bad header:")),
			[]string{"spec.tap.redactHeaders[1]: Invalid value: \"bad header:\": must be an HTTP header name (letters, digits and !#$%&'*+-.^_`|~)"}},
		{"duplicate ignoring case", mesh(redact("X-A", "x-a")),
			[]string{`spec.tap.redactHeaders[1]: Duplicate value: "x-a (also redactHeaders[0])"`}},
		{"too many", mesh(redact(many...)),
			[]string{`spec.tap.redactHeaders: Too many: 65: must have at most 64 items`}},
	})
	m := mesh(redact("X-Session-Token")).(*api.Mesh)
	if got := api.TapRedactHeadersOf(m); !slices.Equal(got, []string{"x-session-token"}) {
		t.Errorf("TapRedactHeadersOf = %v", got)
	}
	if got := api.TapRedactHeadersOf(nil); got != nil {
		t.Errorf("TapRedactHeadersOf(nil) = %v", got)
	}
}
