package ads

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// SecretType is the type URL of SDS Secrets, which the client requests on
// the same ADS stream by the names the listeners and clusters give.
const SecretType = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

// IdentitySecret is the Secret holding the proxy's own certificate and
// key. The proxy makes it itself (SetIdentity); it is never requested
// from, nor accepted from, the control plane.
const IdentitySecret = "trellis-identity"

// listenerSDS rewrites, in place, every SdsSecretConfig of the TLS
// transport sockets in l (filter chains and the default chain) into a
// name-only reference, which the proxy resolves against
// static_resources.secrets. It returns the names whose sds_config was ads:
// the Secrets that come over xDS, or IdentitySecret, which the proxy makes.
// A reference without sds_config names a static secret of the local
// bootstrap and is left alone. A config source other than ads is an error
// naming the field.
func listenerSDS(l *listenerv3.Listener) ([]string, error) {
	var names []string
	var errs []error
	visit := func(path string, fc *listenerv3.FilterChain) {
		ts := fc.GetTransportSocket()
		if ts == nil || !ts.GetTypedConfig().MessageIs((*tlsv3.DownstreamTlsContext)(nil)) {
			return
		}
		dt := &tlsv3.DownstreamTlsContext{}
		n, err := rewriteSDS(path+".transport_socket.typed_config", ts, dt, func() *tlsv3.CommonTlsContext { return dt.GetCommonTlsContext() })
		names = append(names, n...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	for i, fc := range l.GetFilterChains() {
		visit(fmt.Sprintf("filter_chains[%d]", i), fc)
	}
	if fc := l.GetDefaultFilterChain(); fc != nil {
		visit("default_filter_chain", fc)
	}
	return names, errors.Join(errs...)
}

// clusterSDS is listenerSDS for a cluster's transport_socket.
func clusterSDS(c *clusterv3.Cluster) ([]string, error) {
	ts := c.GetTransportSocket()
	if ts == nil || !ts.GetTypedConfig().MessageIs((*tlsv3.UpstreamTlsContext)(nil)) {
		return nil, nil
	}
	ut := &tlsv3.UpstreamTlsContext{}
	return rewriteSDS("transport_socket.typed_config", ts, ut, func() *tlsv3.CommonTlsContext { return ut.GetCommonTlsContext() })
}

// rewriteSDS unpacks ts's typed config into m, strips the sds_config of
// the SdsSecretConfigs of common(), and packs m back when anything
// changed.
func rewriteSDS(path string, ts *corev3.TransportSocket, m proto.Message, common func() *tlsv3.CommonTlsContext) ([]string, error) {
	if err := ts.GetTypedConfig().UnmarshalTo(m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cc := common()
	path += ".common_tls_context"
	var refs []*tlsv3.SdsSecretConfig
	var paths []string
	for i, r := range cc.GetTlsCertificateSdsSecretConfigs() {
		refs, paths = append(refs, r), append(paths, fmt.Sprintf("%s.tls_certificate_sds_secret_configs[%d]", path, i))
	}
	if r := cc.GetValidationContextSdsSecretConfig(); r != nil {
		refs, paths = append(refs, r), append(paths, path+".validation_context_sds_secret_config")
	}
	if r := cc.GetCombinedValidationContext().GetValidationContextSdsSecretConfig(); r != nil {
		refs, paths = append(refs, r), append(paths, path+".combined_validation_context.validation_context_sds_secret_config")
	}
	var names []string
	var errs []error
	changed := false
	for i, r := range refs {
		cs := r.GetSdsConfig()
		if cs == nil {
			continue // a static secret of the local bootstrap
		}
		if cs.GetAds() == nil {
			errs = append(errs, fmt.Errorf("%s.sds_config: only ads is supported", paths[i]))
			continue
		}
		if r.GetName() == "" {
			errs = append(errs, fmt.Errorf("%s.name: required", paths[i]))
			continue
		}
		r.SdsConfig, changed = nil, true
		names = append(names, r.GetName())
	}
	if err := errors.Join(errs...); err != nil || !changed {
		return names, err
	}
	a, err := anypb.New(m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ts.ConfigType = &corev3.TransportSocket_TypedConfig{TypedConfig: a}
	return names, nil
}

// checkTrustedCA checks that an inline trusted_ca of sec holds at least
// one PEM certificate and nothing else, so a bad bundle is NACKed as an
// SDS update rather than failing the listeners that use it.
func checkTrustedCA(sec *tlsv3.Secret) error {
	ds := sec.GetValidationContext().GetTrustedCa()
	data := ds.GetInlineBytes()
	if s := ds.GetInlineString(); s != "" {
		data = []byte(s)
	}
	if len(data) == 0 {
		return nil // absent, or a file the proxy reads itself
	}
	n := 0
	for rest := data; ; n++ {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			if len(bytes.TrimSpace(rest)) > 0 || n == 0 {
				return errors.New("validation_context.trusted_ca: want PEM certificates only")
			}
			return nil
		}
		if _, err := x509.ParseCertificate(b.Bytes); b.Type != "CERTIFICATE" || err != nil {
			return fmt.Errorf("validation_context.trusted_ca: PEM block %d: not a certificate", n)
		}
	}
}

// identitySecret turns a certificate (chain and key) into the Secret the
// listeners and clusters name as IdentitySecret.
func identitySecret(cert *tls.Certificate) (*tlsv3.Secret, error) {
	if cert == nil || len(cert.Certificate) == 0 || cert.PrivateKey == nil {
		return nil, errors.New("ads: identity: certificate or key missing")
	}
	var chain []byte
	for _, der := range cert.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	der, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("ads: identity: key: %w", err)
	}
	key := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	return &tlsv3.Secret{Name: IdentitySecret, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: chain}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: key}},
	}}}, nil
}

// secrets takes a Secret response. Secrets are contents, not structure,
// so they are not held with the listeners and clusters: they are put in
// use at once — the configuration being served is re-applied if it names
// a secret whose contents changed (a new trust bundle) — then ACKed, so
// an ACK of a bundle means the proxy verifies peers with it. A warming
// configuration waiting for them is then tried. If the proxy refuses the
// re-applied configuration, the response is NACKed and the previous
// secrets stay.
func (s *session) secrets(t *typeState, version string, res map[string]any) error {
	c := s.c
	prev := t.current
	t.current = res
	if c.applied && c.secretsChanged(prev, res) {
		if r, missing := c.resources(false); missing == "" {
			if err := c.apply(r); err != nil {
				t.current = prev
				return s.nack(t, version, err)
			}
		}
	}
	t.acked, t.rejected, t.rejections = version, "", 0
	c.opts.Metrics.Update(shortType(t.url), true)
	c.saveCache()
	if err := s.send(t, version, nil); err != nil {
		return err
	}
	return s.tryApply()
}

// secretsChanged reports whether a secret the current listeners or
// clusters name differs between prev and next.
func (c *Client) secretsChanged(prev, next map[string]any) bool {
	changed := func(names []string) bool {
		for _, n := range names {
			a, b := prev[n], next[n]
			if (a == nil) != (b == nil) || (a != nil && !proto.Equal(a.(proto.Message), b.(proto.Message))) {
				return true
			}
		}
		return false
	}
	for _, v := range c.types[ListenerType].current {
		if changed(v.(*listener).sds) {
			return true
		}
	}
	for _, v := range c.types[ClusterType].current {
		if changed(v.(*cluster).sds) {
			return true
		}
	}
	return false
}
