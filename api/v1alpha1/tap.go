package v1alpha1

import (
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// MaxTapRedactHeaders bounds a Mesh's spec.tap.redactHeaders.
const MaxTapRedactHeaders = 64

// MeshTap tunes `trellis tap` (docs/tap.md) on the mesh's sidecars.
type MeshTap struct {
	// RedactHeaders are header names (case-insensitive) whose values a
	// tap with header capture never sees: the sidecar replaces them with
	// "REDACTED". authorization, proxy-authorization, cookie, set-cookie
	// and x-api-key are always redacted; list others here. At most 64.
	RedactHeaders []string `json:"redactHeaders,omitempty"`
}

// TapRedactHeadersOf returns m's spec.tap.redactHeaders in lower case
// (nil for m nil or without tap).
func TapRedactHeadersOf(m *Mesh) []string {
	if m == nil || m.Spec.Tap == nil {
		return nil
	}
	out := make([]string, len(m.Spec.Tap.RedactHeaders))
	for i, h := range m.Spec.Tap.RedactHeaders {
		out[i] = strings.ToLower(h)
	}
	return out
}

func validateMeshTap(t *MeshTap, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	rp := p.Child("redactHeaders")
	if len(t.RedactHeaders) > MaxTapRedactHeaders {
		errs = append(errs, field.TooMany(rp, len(t.RedactHeaders), MaxTapRedactHeaders))
	}
	seen := map[string]int{}
	for i, h := range t.RedactHeaders {
		switch {
		case h == "":
			errs = append(errs, field.Required(rp.Index(i), "a header name"))
		case !isHeaderToken(h):
			errs = append(errs, field.Invalid(rp.Index(i), h, "must be an HTTP header name (letters, digits and !#$%&'*+-.^_`|~)"))
		default:
			k := strings.ToLower(h)
			if j, dup := seen[k]; dup {
				errs = append(errs, field.Duplicate(rp.Index(i), h+" (also redactHeaders["+strconv.Itoa(j)+"])"))
			}
			seen[k] = i
		}
	}
	return errs
}

// isHeaderToken reports whether s is an RFC 9110 token (a field name).
func isHeaderToken(s string) bool {
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
