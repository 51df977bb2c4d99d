package route

import (
	"errors"
	"fmt"
	"math/rand/v2"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// Mirror is one compiled request_mirror_policies entry.
type Mirror struct {
	Cluster string
	// per is the share of requests mirrored, in millionths.
	per uint32
	// NoSuffix keeps the authority as is (disable_shadow_host_suffix_append);
	// otherwise "-shadow" is appended to its host part.
	NoSuffix bool
}

func compileMirror(m *routev3.RouteAction_RequestMirrorPolicy) (Mirror, error) {
	if m.GetCluster() == "" {
		return Mirror{}, errors.New("cluster: required (cluster_header is not supported)")
	}
	mm := Mirror{Cluster: m.GetCluster(), per: 1_000_000, NoSuffix: m.GetDisableShadowHostSuffixAppend()}
	if rf := m.GetRuntimeFraction(); rf != nil {
		if rf.GetRuntimeKey() != "" {
			return Mirror{}, errors.New("runtime_fraction.runtime_key: not supported (Trellis has no runtime)")
		}
		fp := rf.GetDefaultValue()
		var scale uint32
		switch fp.GetDenominator() {
		case typev3.FractionalPercent_HUNDRED:
			scale = 10_000
		case typev3.FractionalPercent_TEN_THOUSAND:
			scale = 100
		case typev3.FractionalPercent_MILLION:
			scale = 1
		default:
			return Mirror{}, fmt.Errorf("runtime_fraction.default_value.denominator: %v not supported", fp.GetDenominator())
		}
		mm.per = min(fp.GetNumerator()*scale, 1_000_000)
	}
	return mm, nil
}

// Sampled draws whether this request is mirrored.
func (m *Mirror) Sampled() bool {
	return m.per >= 1_000_000 || rand.Uint32N(1_000_000) < m.per
}
