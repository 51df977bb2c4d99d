package xdsserver

import (
	"fmt"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// LocalSecret is the Secret a proxy makes itself (its own certificate and
// key, which never leave it): a TLS context may read it over ADS, yet the
// server never holds nor sends it, so the consistency check does not
// require it.
const LocalSecret = "trellis-identity"

// consistentSDS checks that the Secrets are exactly those the TLS
// contexts of the listeners (every filter chain and the default chain)
// and clusters read over ADS, LocalSecret aside: a proxy holds a
// configuration until every Secret it reads has arrived, so a missing one
// would hold it forever.
func consistentSDS(r Resources) []error {
	var errs []error
	want := map[string]string{} // secret -> what reads it first
	read := func(what string, ts *corev3.TransportSocket) {
		names, err := sdsNames(ts)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: transport_socket: %w", what, err))
		}
		for _, n := range names {
			if _, ok := want[n]; !ok && n != LocalSecret {
				want[n] = what
			}
		}
	}
	for _, res := range r.Listeners {
		l := res.(*listenerv3.Listener)
		chains := l.GetFilterChains()
		if d := l.GetDefaultFilterChain(); d != nil {
			chains = append(chains[:len(chains):len(chains)], d)
		}
		for _, fc := range chains {
			read(fmt.Sprintf("listener %q", l.GetName()), fc.GetTransportSocket())
		}
	}
	for _, res := range r.Clusters {
		c := res.(*clusterv3.Cluster)
		read(fmt.Sprintf("cluster %q", c.GetName()), c.GetTransportSocket())
	}
	have := make(map[string]bool, len(r.Secrets))
	for _, res := range r.Secrets {
		name := res.(*tlsv3.Secret).GetName()
		have[name] = true
		if name == LocalSecret {
			errs = append(errs, fmt.Errorf("secret %q: made by the proxy itself, never sent", name))
		} else if _, ok := want[name]; !ok {
			errs = append(errs, fmt.Errorf("secret %q: no listener or cluster reads it", name))
		}
	}
	for _, name := range sortedKeys(want) {
		if !have[name] {
			errs = append(errs, fmt.Errorf("%s: secret %q is missing", want[name], name))
		}
	}
	return errs
}

// sdsNames returns the Secret names a TLS transport socket reads over ADS
// (SdsSecretConfigs whose sds_config is ads), sorted; nil for no socket
// or one that is not TLS.
func sdsNames(ts *corev3.TransportSocket) ([]string, error) {
	a := ts.GetTypedConfig()
	var cc *tlsv3.CommonTlsContext
	switch {
	case a == nil:
		return nil, nil
	case a.MessageIs((*tlsv3.DownstreamTlsContext)(nil)):
		d := &tlsv3.DownstreamTlsContext{}
		if err := a.UnmarshalTo(d); err != nil {
			return nil, err
		}
		cc = d.GetCommonTlsContext()
	case a.MessageIs((*tlsv3.UpstreamTlsContext)(nil)):
		u := &tlsv3.UpstreamTlsContext{}
		if err := a.UnmarshalTo(u); err != nil {
			return nil, err
		}
		cc = u.GetCommonTlsContext()
	default:
		return nil, nil
	}
	refs := append([]*tlsv3.SdsSecretConfig{cc.GetValidationContextSdsSecretConfig(),
		cc.GetCombinedValidationContext().GetValidationContextSdsSecretConfig()}, cc.GetTlsCertificateSdsSecretConfigs()...)
	var names []string
	for _, ref := range refs {
		if ref.GetSdsConfig().GetAds() != nil {
			names = append(names, ref.GetName())
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}
