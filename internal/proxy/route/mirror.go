package route

import (
	"errors"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// Mirror is one compiled request_mirror_policies entry.
type Mirror struct {
	Cluster string
	// share is the share of requests mirrored.
	share Share
	// NoSuffix keeps the authority as is (disable_shadow_host_suffix_append);
	// otherwise "-shadow" is appended to its host part.
	NoSuffix bool
}

func compileMirror(m *routev3.RouteAction_RequestMirrorPolicy) (Mirror, error) {
	if m.GetCluster() == "" {
		return Mirror{}, errors.New("cluster: required (cluster_header is not supported)")
	}
	mm := Mirror{Cluster: m.GetCluster(), share: All, NoSuffix: m.GetDisableShadowHostSuffixAppend()}
	if rf := m.GetRuntimeFraction(); rf != nil {
		share, err := RuntimeShare("runtime_fraction", rf)
		if err != nil {
			return Mirror{}, err
		}
		mm.share = share
	}
	return mm, nil
}

// Sampled draws whether this request is mirrored.
func (m *Mirror) Sampled() bool { return m.share.Sample() }
