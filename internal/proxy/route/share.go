package route

import (
	"fmt"
	"math/rand/v2"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// Share is a fraction of requests in millionths: Envoy's FractionalPercent
// (mirror runtime_fraction, fault percentages, filter_enabled, ...).
type Share uint32

// All is every request.
const All Share = 1_000_000

// ShareOf converts a FractionalPercent; an unset one is 0, as in Envoy.
func ShareOf(p *typev3.FractionalPercent) Share {
	n := p.GetNumerator()
	switch p.GetDenominator() {
	case typev3.FractionalPercent_HUNDRED:
		n *= 10_000
	case typev3.FractionalPercent_TEN_THOUSAND:
		n *= 100
	}
	return Share(min(n, uint32(All)))
}

// RuntimeShare converts a RuntimeFractionalPercent named field; an unset one
// is 0. Trellis has no runtime, so a runtime_key is an error.
func RuntimeShare(field string, f *corev3.RuntimeFractionalPercent) (Share, error) {
	if f.GetRuntimeKey() != "" {
		return 0, fmt.Errorf("%s.runtime_key: not supported (Trellis has no runtime)", field)
	}
	return ShareOf(f.GetDefaultValue()), nil
}

// Sample draws whether one request falls in the share.
func (s Share) Sample() bool { return s >= All || s > 0 && rand.Uint32N(uint32(All)) < uint32(s) }
