package translator

import (
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"

	"github.com/trellis-mesh/trellis/internal/testutil/certs"
)

// testBundles gives every mesh a placeholder trust bundle, so golden
// files are stable; validateWithProxy swaps in a real one.
var testBundles = WithTrustBundles(func(mesh string) ([]byte, string, bool) {
	return []byte("test trust bundle of mesh " + mesh + "\n"), "v1-" + mesh, true
})

// inlineSecrets does what the proxy's ADS client does with the TLS
// contexts of b (see internal/xds/ads): every SdsSecretConfig read over
// ADS becomes a name-only reference to a static secret, and the static
// secrets are the trust bundle, as a real CA's certificate (r's is a
// placeholder), and the proxy's identity, a leaf of that CA.
func inlineSecrets(t testing.TB, b *bootstrapv3.Bootstrap, r *Resources) {
	t.Helper()
	names := map[string]bool{}
	strip := func(ts *corev3.TransportSocket) *corev3.TransportSocket {
		if ts == nil {
			return nil
		}
		var m proto.Message
		var cc *tlsv3.CommonTlsContext
		switch a := ts.GetTypedConfig(); {
		case a.MessageIs((*tlsv3.DownstreamTlsContext)(nil)):
			d := &tlsv3.DownstreamTlsContext{}
			if err := a.UnmarshalTo(d); err != nil {
				t.Fatal(err)
			}
			m, cc = d, d.GetCommonTlsContext()
		case a.MessageIs((*tlsv3.UpstreamTlsContext)(nil)):
			u := &tlsv3.UpstreamTlsContext{}
			if err := a.UnmarshalTo(u); err != nil {
				t.Fatal(err)
			}
			m, cc = u, u.GetCommonTlsContext()
		default:
			return ts
		}
		refs := append([]*tlsv3.SdsSecretConfig{cc.GetValidationContextSdsSecretConfig(),
			cc.GetCombinedValidationContext().GetValidationContextSdsSecretConfig()}, cc.GetTlsCertificateSdsSecretConfigs()...)
		for _, ref := range refs {
			if ref.GetSdsConfig().GetAds() != nil {
				names[ref.GetName()] = true
				ref.SdsConfig = nil
			}
		}
		return &corev3.TransportSocket{Name: ts.Name, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(m)}}
	}
	for _, l := range b.StaticResources.Listeners {
		for _, fc := range l.FilterChains {
			fc.TransportSocket = strip(fc.TransportSocket)
		}
		if fc := l.DefaultFilterChain; fc != nil {
			fc.TransportSocket = strip(fc.TransportSocket)
		}
	}
	for _, c := range b.StaticResources.Clusters {
		c.TransportSocket = strip(c.TransportSocket)
	}
	if len(names) == 0 {
		return
	}
	ca := certs.NewCA(t, "mesh")
	leaf := ca.Issue(t, certs.LeafOptions{URIs: []string{"spiffe://test.trellis.local/test/self"}})
	have := map[string]bool{}
	for _, s := range r.Secrets {
		s := s.(*tlsv3.Secret)
		have[s.Name] = true
		if s.Name == TrustBundleSecret {
			s = bundleSecret(ca.PEM())
		}
		b.StaticResources.Secrets = append(b.StaticResources.Secrets, s)
	}
	for n := range names {
		switch {
		case n == IdentitySecret:
			b.StaticResources.Secrets = append(b.StaticResources.Secrets, &tlsv3.Secret{Name: n, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
				CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: leaf.CertPEM}},
				PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: leaf.KeyPEM}},
			}}})
		case !have[n]:
			t.Fatalf("the configuration reads secret %q over ADS, which is not in the output", n)
		}
	}
}
