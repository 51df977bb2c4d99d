package translator

import (
	"fmt"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

// Secret names the translator's TLS contexts use (SDS over ADS).
const (
	// IdentitySecret is the proxy's own certificate and key. The control
	// plane never sends it: the proxy makes it from its key and the
	// certificate it obtained.
	IdentitySecret = "trellis-identity"
	// TrustBundleSecret is the mesh's trust bundle, which the control
	// plane sends to every sidecar of a mesh with mutual TLS.
	TrustBundleSecret = "trellis-trust-bundle"

	tlsSocketName = "envoy.transport_sockets.tls"
	// noIdentity is the only SAN a client accepts from a Service that no
	// Dataplane serves: no certificate of a mesh CA has it (the CA signs
	// spiffe:// IDs only), so a connection fails closed instead of
	// accepting any workload of the mesh, which an empty SAN list would.
	noIdentity = "urn:trellis:no-identity"
)

// TrustBundles returns the PEM trust bundle of a mesh and its version,
// or ok false when the mesh has none (yet).
type TrustBundles func(mesh string) (pem []byte, version string, ok bool)

// Option configures NewIndex.
type Option func(*options)

type options struct {
	bundles TrustBundles
}

// WithTrustBundles makes f the source of the meshes' trust bundles. The
// Index reads each mTLS mesh's bundle once, when it is built (and again
// in each Index.Update): a new bundle needs a new Index. Without it (or
// when f has none for a mesh) the sidecars of a mesh with mutual TLS get
// no trellis-trust-bundle Secret, so their configuration is not
// Consistent and the xDS server refuses it: fail closed.
func WithTrustBundles(f TrustBundles) Option {
	return func(o *options) { o.bundles = f }
}

// security is a mesh's identity settings, read from its Mesh object.
type security struct {
	mode        v1alpha1.MTLSMode
	trustDomain string
	deny        bool // spec.accessPolicy.default DENY
	bundle      *tlsv3.Secret
	bundleVer   string
	// access lists the AccessPolicies targeting each Service, by
	// namespace and name.
	access map[ServiceKey][]*v1alpha1.AccessPolicy
	// trustDomains are the trust domains of every Mesh object, for
	// sources in other meshes.
	trustDomains map[string]string
	// inboundTLS is the downstream transport socket per protocol class
	// (http, tcp), shared by every inbound listener of the mesh.
	inboundTLS [2]*corev3.TransportSocket
}

func (s *security) mtls() bool { return s != nil && s.mode != v1alpha1.MTLSDisabled }

// secure reads every mesh's identity settings and access policies.
func (idx *Index) secure(objs []v1alpha1.Object, o options) {
	idx.opts = o
	meshes := map[string]*v1alpha1.Mesh{}
	tds := map[string]string{}
	var policies []*v1alpha1.AccessPolicy
	for _, obj := range objs {
		switch obj := obj.(type) {
		case *v1alpha1.Mesh:
			meshes[obj.Name] = obj
			tds[obj.Name] = v1alpha1.TrustDomainOf(obj.Name, obj)
		case *v1alpha1.AccessPolicy:
			policies = append(policies, obj)
		}
	}
	slices.SortFunc(policies, func(a, b *v1alpha1.AccessPolicy) int { return compareKeys(keyOf(a), keyOf(b)) })
	for name, m := range idx.meshes {
		mo := meshes[name]
		s := &security{
			mode: v1alpha1.MTLSModeOf(mo), trustDomain: v1alpha1.TrustDomainOf(name, mo),
			deny:   v1alpha1.AccessDefaultOf(mo) == v1alpha1.AccessDeny,
			access: map[ServiceKey][]*v1alpha1.AccessPolicy{}, trustDomains: tds,
		}
		if s.mtls() {
			if o.bundles != nil {
				if pem, ver, ok := o.bundles(name); ok {
					s.bundle, s.bundleVer = bundleSecret(pem), ver
				}
			}
			s.inboundTLS = [2]*corev3.TransportSocket{downstreamTLS(true), downstreamTLS(false)}
		}
		m.sec = s
	}
	for _, p := range policies {
		m := idx.meshes[v1alpha1.MeshOf(p)]
		if m == nil {
			continue
		}
		ns := v1alpha1.NamespaceOf(p)
		for _, t := range p.Spec.TargetRefs {
			if t.Group == "" && t.Kind == v1alpha1.KindService {
				k := ServiceKey{ns, string(t.Name)}
				m.sec.access[k] = append(m.sec.access[k], p)
			}
		}
	}
}

func bundleSecret(pem []byte) *tlsv3.Secret {
	return &tlsv3.Secret{Name: TrustBundleSecret, Type: &tlsv3.Secret_ValidationContext{
		ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: pem}},
		},
	}}
}

// TrustBundleVersion returns the version of the trust bundle the Index
// holds for mesh, and false when it holds none (mutual TLS disabled, or
// no bundle). Compare it with the CA's to know when to build a new Index.
func (idx *Index) TrustBundleVersion(mesh string) (string, bool) {
	m := idx.meshes[mesh]
	if m == nil || m.sec == nil || m.sec.bundle == nil {
		return "", false
	}
	return m.sec.bundleVer, true
}

// ReadsTrustBundle reports whether the configuration carries the trust
// bundle of mesh, so that a new bundle (a CA rotation) changes it.
func (r *Resources) ReadsTrustBundle(mesh string) bool {
	return r.mesh == mesh && r.mtls
}

// addSecrets adds the trust bundle to an mTLS sidecar's configuration.
func (b *builder) addSecrets() {
	if b.p.Proxyless || !b.m.sec.mtls() || !b.readsTLS() {
		// Nothing would read the bundle (a sidecar with only the plaintext
		// bridge listener, bridge.go): the server's consistency check
		// refuses a Secret no listener or cluster reads.
		return
	}
	b.res.mtls = true
	if b.m.sec.bundle != nil {
		b.res.Secrets, b.res.SecretsVersion = []types.Resource{b.m.sec.bundle}, b.m.sec.bundleVer
	}
}

// readsTLS reports whether a listener or cluster of the output has a TLS
// transport socket.
func (b *builder) readsTLS() bool {
	for _, r := range b.res.Clusters {
		if c, ok := r.(*clusterv3.Cluster); ok && c.GetTransportSocket() != nil {
			return true
		}
	}
	for _, r := range b.res.Listeners {
		l, ok := r.(*listenerv3.Listener)
		if !ok {
			continue
		}
		for _, fc := range l.GetFilterChains() {
			if fc.GetTransportSocket() != nil {
				return true
			}
		}
	}
	return false
}

func sdsRef(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: adsSource()}
}

// commonTLS is the part of both sides' TLS contexts: TLS 1.3 only, the
// proxy's certificate over SDS, and ALPN.
func commonTLS(alpn []string) *tlsv3.CommonTlsContext {
	return &tlsv3.CommonTlsContext{
		TlsParams:                      &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_3},
		AlpnProtocols:                  alpn,
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef(IdentitySecret)},
	}
}

// downstreamTLS is an inbound listener's TLS: a client certificate of
// the mesh's CA required, ALPN h2 and http/1.1 on HTTP ports.
func downstreamTLS(http bool) *corev3.TransportSocket {
	var alpn []string
	if http {
		alpn = []string{"h2", "http/1.1"}
	}
	cc := commonTLS(alpn)
	cc.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: sdsRef(TrustBundleSecret)}
	ctx := &tlsv3.DownstreamTlsContext{RequireClientCertificate: wrapperspb.Bool(true), CommonTlsContext: cc}
	return &corev3.TransportSocket{Name: tlsSocketName, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)}}
}

// inboundListener is an inbound port's listener: filters (network RBAC,
// then the terminal filter) behind mutual TLS as the mesh's mode says.
// STRICT: one TLS chain; PERMISSIVE: the TLS chain for connections that
// start with a TLS ClientHello and a plaintext default chain; DISABLED:
// one plaintext chain.
func (b *builder) inboundListener(name, addr string, port int32, proto v1alpha1.Protocol, filters []*listenerv3.Filter) *listenerv3.Listener {
	l := &listenerv3.Listener{Name: name, Address: socketAddress(addr, port)}
	sec := b.m.sec
	if !sec.mtls() {
		l.FilterChains = []*listenerv3.FilterChain{{Filters: filters}}
		return l
	}
	ts := sec.inboundTLS[1]
	if isHTTP(proto) {
		ts = sec.inboundTLS[0]
	}
	tlsChain := &listenerv3.FilterChain{Filters: filters, TransportSocket: ts}
	if sec.mode == v1alpha1.MTLSPermissive {
		tlsChain.FilterChainMatch = &listenerv3.FilterChainMatch{TransportProtocol: "tls"}
		l.DefaultFilterChain = &listenerv3.FilterChain{Filters: filters}
	}
	l.FilterChains = []*listenerv3.FilterChain{tlsChain}
	return l
}

// normalizePaths makes an inbound connection manager normalize request
// paths before routing and filters, so access policies' path rules, the
// route and the application see the same path (docs/rbac.md). Encoded
// slashes are decoded and forwarded: a redirect (UNESCAPE_AND_REDIRECT)
// would fail gRPC calls and cost HTTP clients a round trip to reach the
// same path, and a refusal (REJECT_REQUEST) would break applications that
// use %2F, for no gain in what a policy can be bypassed with.
func normalizePaths(h *hcmv3.HttpConnectionManager) {
	h.NormalizePath = wrapperspb.Bool(true)
	h.MergeSlashes = true
	h.PathWithEscapedSlashesAction = hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD
}

// securedKey caches a service port's cluster with its upstream TLS.
type securedKey struct{ port int32 }

// secured returns bc with the cluster calling the service over mutual
// TLS, verifying that the server is one of the identities that serve it,
// built once per Index.
func (b *builder) secured(s *service, port int32, bc *builtCluster) *builtCluster {
	if b.p.Proxyless || !b.m.sec.mtls() {
		return bc
	}
	k := securedKey{port}
	if v, ok := s.cache.Load(k); ok && !uncached {
		return v.(*builtCluster)
	}
	c := proto.Clone(bc.cluster).(*clusterv3.Cluster)
	var alpn []string
	switch protocolOf(portOf(s.spec, port)) {
	case v1alpha1.ProtocolHTTP:
		alpn = []string{"http/1.1"}
	case v1alpha1.ProtocolHTTP2, v1alpha1.ProtocolGRPC:
		alpn = []string{"h2"}
	}
	cc := commonTLS(alpn)
	var sans []*tlsv3.SubjectAltNameMatcher
	for _, id := range b.m.identities(s) {
		sans = append(sans, &tlsv3.SubjectAltNameMatcher{
			SanType: tlsv3.SubjectAltNameMatcher_URI,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: id}},
		})
	}
	cc.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{
		CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: sans},
			ValidationContextSdsSecretConfig: sdsRef(TrustBundleSecret),
		},
	}
	ctx := &tlsv3.UpstreamTlsContext{
		Sni:              s.key.Name + "." + s.key.Namespace + "." + b.m.name + ".trellis",
		CommonTlsContext: cc,
	}
	c.TransportSocket = &corev3.TransportSocket{Name: tlsSocketName, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)}}
	out := &builtCluster{cluster: c, endpoints: bc.endpoints}
	if uncached {
		return out
	}
	v, _ := s.cache.LoadOrStore(k, out)
	return v.(*builtCluster)
}

// identities lists the SPIFFE IDs allowed to serve s: the identity of
// every Dataplane of the mesh s selects (ready or not), sorted, or
// noIdentity when there is none.
func (m *meshIndex) identities(s *service) []string {
	seen := map[string]bool{}
	var cands []*v1alpha1.Dataplane
	first := true
	byLabel := m.dataplanesByLabel()
	for k, v := range s.spec.Selector {
		if l := byLabel[k+"="+v]; first || len(l) < len(cands) {
			cands, first = l, false
		}
	}
	for _, dp := range cands {
		if v1alpha1.Selects(s.spec.Selector, dp.Labels) {
			seen["spiffe://"+m.sec.trustDomain+"/"+m.name+"/"+v1alpha1.IdentityService(dp)] = true
		}
	}
	if len(seen) == 0 {
		return []string{noIdentity}
	}
	ids := make([]string, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// dpLabelsKey caches the mesh's Dataplanes by label pair.
type dpLabelsKey struct{}

// dataplanesByLabel returns the mesh's Dataplanes (ready or not) by
// "key=value" of each label, built once per Index: the identities of a
// Service come from its rarest selector pair, not a scan of the mesh.
func (m *meshIndex) dataplanesByLabel() map[string][]*v1alpha1.Dataplane {
	if v, ok := m.cache.Load(dpLabelsKey{}); ok && !uncached {
		return v.(map[string][]*v1alpha1.Dataplane)
	}
	idx := map[string][]*v1alpha1.Dataplane{}
	for _, dp := range m.dataplanes {
		for k, v := range dp.Labels {
			idx[k+"="+v] = append(idx[k+"="+v], dp)
		}
	}
	if uncached {
		return idx
	}
	v, _ := m.cache.LoadOrStore(dpLabelsKey{}, idx)
	return v.(map[string][]*v1alpha1.Dataplane)
}

// sdsNames returns the Secret names that the TLS context of ts reads over
// ADS, or nil.
func sdsNames(ts *corev3.TransportSocket) []string {
	a := ts.GetTypedConfig()
	var cc *tlsv3.CommonTlsContext
	switch {
	case a == nil:
		return nil
	case a.MessageIs((*tlsv3.DownstreamTlsContext)(nil)):
		d := &tlsv3.DownstreamTlsContext{}
		if a.UnmarshalTo(d) != nil {
			return nil
		}
		cc = d.GetCommonTlsContext()
	case a.MessageIs((*tlsv3.UpstreamTlsContext)(nil)):
		u := &tlsv3.UpstreamTlsContext{}
		if a.UnmarshalTo(u) != nil {
			return nil
		}
		cc = u.GetCommonTlsContext()
	default:
		return nil
	}
	refs := append([]*tlsv3.SdsSecretConfig{cc.GetValidationContextSdsSecretConfig(),
		cc.GetCombinedValidationContext().GetValidationContextSdsSecretConfig()}, cc.GetTlsCertificateSdsSecretConfigs()...)
	var names []string
	for _, r := range refs {
		if r.GetSdsConfig().GetAds() != nil {
			names = append(names, r.GetName())
		}
	}
	return names
}

// secretErrors checks that every Secret a listener or cluster reads over
// ADS is in the output (but IdentitySecret, which the proxy makes) and
// that every Secret in it is read.
func (r *Resources) secretErrors(secrets map[string]bool) []error {
	var errs []error
	read := map[string]bool{}
	check := func(what, name string, ts *corev3.TransportSocket) {
		for _, n := range sdsNames(ts) {
			if n == IdentitySecret {
				continue
			}
			read[n] = true
			if !secrets[n] {
				errs = append(errs, fmt.Errorf("%s %q: secret %q missing", what, name, n))
			}
		}
	}
	for _, x := range r.Listeners {
		l := x.(*listenerv3.Listener)
		chains := l.GetFilterChains()
		if d := l.GetDefaultFilterChain(); d != nil {
			chains = append(chains[:len(chains):len(chains)], d)
		}
		for _, fc := range chains {
			check("listener", l.GetName(), fc.GetTransportSocket())
		}
	}
	for _, x := range r.Clusters {
		c := x.(*clusterv3.Cluster)
		check("cluster", c.GetName(), c.GetTransportSocket())
	}
	for n := range secrets {
		if !read[n] {
			errs = append(errs, fmt.Errorf("secret %q: no listener or cluster reads it", n))
		}
	}
	return errs
}
