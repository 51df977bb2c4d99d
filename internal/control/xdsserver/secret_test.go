package xdsserver

import (
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
)

const bundleName = "trellis-trust-bundle"

func adsRef(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}}
}

func bundle(pem string) *tlsv3.Secret {
	return &tlsv3.Secret{Name: bundleName, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: []byte(pem)}},
	}}}
}

// mtlsResources is basic with its cluster calling over mutual TLS, as the
// translator emits it: the proxy's own certificate (LocalSecret) and the
// trust bundle over ADS, and the bundle Secret.
func mtlsResources(t testing.TB, pem string) Resources {
	r := basic(t, time.Second, "127.0.0.1:1001")
	c := proto.Clone(r.Clusters[0].(*clusterv3.Cluster)).(*clusterv3.Cluster)
	c.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{
		TypedConfig: mustAny(t, &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{adsRef(LocalSecret)},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         &tlsv3.CertificateValidationContext{},
				ValidationContextSdsSecretConfig: adsRef(bundleName),
			}},
		}}),
	}}
	r.Clusters = []types.Resource{c}
	r.Secrets = []types.Resource{bundle(pem)}
	return r
}

// permissiveInbound is an inbound listener whose TLS chain is the
// default one (the translator's PERMISSIVE form puts TLS in
// filter_chains; what matters here is that default_filter_chain counts).
func permissiveInbound(t testing.TB) *listenerv3.Listener {
	ts := &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{
		TypedConfig: mustAny(t, &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{adsRef(LocalSecret)},
			ValidationContextType:          &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: adsRef(bundleName)},
		}}),
	}}
	return &listenerv3.Listener{
		Name:               "inbound",
		FilterChains:       []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.tcp_proxy"}}}},
		DefaultFilterChain: &listenerv3.FilterChain{TransportSocket: ts, Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.tcp_proxy"}}},
	}
}

func TestSecretsConsistency(t *testing.T) {
	for _, tc := range []struct {
		name    string
		secrets []types.Resource
		want    string // "" for accepted
	}{
		{"bundle present, identity local", []types.Resource{bundle("a")}, ""},
		{"bundle missing", nil, `cluster "web": secret "trellis-trust-bundle" is missing`},
		{"secret nobody reads", []types.Resource{bundle("a"), &tlsv3.Secret{Name: "extra"}}, `secret "extra": no listener or cluster reads it`},
		{"local secret sent", []types.Resource{bundle("a"), &tlsv3.Secret{Name: LocalSecret}}, `secret "trellis-identity": made by the proxy itself`},
		{"wrong type", []types.Resource{bundle("a"), edsCluster("x", clusterv3.Cluster_ROUND_ROBIN)}, "secret[1]: got a Cluster, want a secret"},
		{"duplicate", []types.Resource{bundle("a"), bundle("b")}, `secret "trellis-trust-bundle": listed twice`},
	} {
		t.Run(tc.name+", inbound read too", func(t *testing.T) {
			r := mtlsResources(t, "a")
			r.Secrets = tc.secrets
			r.Clusters = basic(t, time.Second, "127.0.0.1:1001").Clusters // only the listener reads it now
			r.Listeners = append(r.Listeners, permissiveInbound(t))
			_, err := New(Options{}).SetResources("n", r)
			want := strings.ReplaceAll(tc.want, `cluster "web"`, `listener "inbound"`)
			switch {
			case want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
				t.Fatalf("err = %v, want %q", err, want)
			}
		})
		t.Run(tc.name, func(t *testing.T) {
			r := mtlsResources(t, "a")
			r.Secrets = tc.secrets
			_, err := New(Options{}).SetResources("n", r)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestSecretsOverADS serves the trust bundle to a proxy over ADS, tracks
// its ACK and NACK like the other types, and pushes a new bundle alone.
func TestSecretsOverADS(t *testing.T) {
	srv := New(Options{})
	c := newADSClient(t, dial(t, startServer(t, srv)), "sidecar")
	if _, err := srv.SetResources("sidecar", mtlsResources(t, "bundle-1")); err != nil {
		t.Fatal(err)
	}
	names := []string{bundleName}
	c.send(resource.SecretType, "", "", names, "")
	r := c.recv()
	if r.GetTypeUrl() != resource.SecretType || len(r.GetResources()) != 1 {
		t.Fatalf("got %s with %d resources, want one secret", r.GetTypeUrl(), len(r.GetResources()))
	}
	got := &tlsv3.Secret{}
	if err := r.GetResources()[0].UnmarshalTo(got); err != nil || string(got.GetValidationContext().GetTrustedCa().GetInlineBytes()) != "bundle-1" {
		t.Fatalf("secret = %v, %v", got, err)
	}
	c.ack(r, names)
	waitFor(t, "the ACK", func() bool {
		st, _ := srv.Status("sidecar")
		return st.Types[resource.SecretType].AckedVersion == r.GetVersionInfo()
	})

	// A new bundle changes the secret and nothing else.
	changed, err := srv.SetResources("sidecar", mtlsResources(t, "bundle-2"))
	if err != nil || !changed {
		t.Fatalf("changed=%v err=%v", changed, err)
	}
	r2 := c.recv()
	if r2.GetTypeUrl() != resource.SecretType || r2.GetVersionInfo() == r.GetVersionInfo() {
		t.Fatalf("got %s version %s after a new bundle, want a new secret version", r2.GetTypeUrl(), r2.GetVersionInfo())
	}
	c.send(resource.SecretType, r.GetVersionInfo(), r2.GetNonce(), names, "bad bundle")
	waitFor(t, "the NACK", func() bool {
		st, _ := srv.Status("sidecar")
		ts := st.Types[resource.SecretType]
		return ts.NackVersion == r2.GetVersionInfo() && ts.NackError == "bad bundle" && ts.AckedVersion == r.GetVersionInfo()
	})
	// The same content again pushes nothing.
	if changed, err := srv.SetResources("sidecar", mtlsResources(t, "bundle-2")); err != nil || changed {
		t.Fatalf("same content: changed=%v err=%v", changed, err)
	}

	// The bundle's own version as the Secrets' version: what the node
	// acknowledges names the bundle it holds.
	r3 := mtlsResources(t, "bundle-3")
	r3.SecretsVersion = "roots-3"
	if changed, err := srv.SetResources("sidecar", r3); err != nil || !changed {
		t.Fatalf("bundle-3: changed=%v err=%v", changed, err)
	}
	if got := c.recv(); got.GetTypeUrl() != resource.SecretType || got.GetVersionInfo() != "roots-3" {
		t.Fatalf("got %s version %q, want the secret at version roots-3", got.GetTypeUrl(), got.GetVersionInfo())
	} else {
		c.ack(got, names)
	}
	waitFor(t, "the ACK of roots-3", func() bool {
		st, _ := srv.Status("sidecar")
		return st.Types[resource.SecretType].AckedVersion == "roots-3"
	})
}
