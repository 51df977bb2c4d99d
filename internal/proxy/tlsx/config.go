package tlsx

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/trellis-mesh/trellis/internal/proxy/datasource"
)

// Secrets holds a bootstrap's static_resources.secrets keyed by Secret.name.
// SdsSecretConfig references (tls_certificate_sds_secret_configs,
// validation_context_sds_secret_config) are resolved against it by name
// only; their sds_config is ignored. A nil Secrets resolves no name.
type Secrets map[string]*tlsv3.Secret

func (s Secrets) lookup(name string) (*tlsv3.Secret, error) {
	sec := s[name]
	if sec == nil {
		return nil, fmt.Errorf("secret %q not found", name)
	}
	return sec, nil
}

// ServerConfig builds the config a listener's filter chain terminates TLS
// with. Errors name the field path relative to c, e.g.
// `common_tls_context.tls_certificates[0].private_key: filename "/x": ...`.
//
// Client certificates follow Envoy: with a trusted_ca, a client certificate
// is requested and, if presented, its chain must verify against trusted_ca
// with id-kp-clientAuth usage (or no EKU); it is required when
// require_client_certificate is true or any SAN matcher is set. Without a
// trusted_ca no client certificate is requested, and
// require_client_certificate is an error here (Envoy silently ignores it).
// Hostnames are never checked; SAN matchers are.
//
// Several certificates may be given; crypto/tls picks one by SNI and by what
// the client supports, falling back to the first. When alpn_protocols is set
// the config's GetConfigForClient drops ALPN for clients that offer no
// common protocol (Envoy answers without ALPN; crypto/tls would abort), so a
// caller that installs its own GetConfigForClient must keep that behaviour.
func ServerConfig(c *tlsv3.DownstreamTlsContext, s Secrets) (*tls.Config, error) {
	if c == nil {
		return nil, errors.New("not set")
	}
	cfg, v, err := newConfig(c.GetCommonTlsContext(), s, serverDefaults)
	if err != nil {
		return nil, err
	}
	if len(cfg.Certificates) == 0 {
		// envoy: "No TLS certificates found for server context".
		return nil, errors.New("common_tls_context: a server needs tls_certificates or tls_certificate_sds_secret_configs")
	}
	require := c.GetRequireClientCertificate().GetValue()
	if v == nil {
		if require {
			return nil, errors.New("require_client_certificate: needs a validation context with trusted_ca")
		}
	} else {
		v.usage = x509.ExtKeyUsageClientAuth
		v.requireCert = require || len(v.sans) > 0
		cfg.ClientAuth = tls.RequestClientCert
		if v.requireCert {
			cfg.ClientAuth = tls.RequireAnyClientCert
		}
		// ClientCAs only fills the CertificateRequest's certificate_authorities
		// (Envoy sends that list too); with ClientAuth below
		// VerifyClientCertIfGiven, crypto/tls does not verify against it.
		cfg.ClientCAs = v.roots
		cfg.VerifyConnection = v.verify
	}
	if len(cfg.NextProtos) > 0 {
		// envoy: ServerContextImpl::alpnSelectCallback returns
		// SSL_TLSEXT_ERR_NOACK when nothing overlaps, so the handshake goes
		// on without ALPN; crypto/tls fails it (Go issue 46310).
		noALPN := cfg.Clone()
		noALPN.NextProtos = nil
		protos := cfg.NextProtos
		cfg.GetConfigForClient = func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
			if len(hi.SupportedProtos) == 0 || slices.ContainsFunc(hi.SupportedProtos, func(p string) bool { return slices.Contains(protos, p) }) {
				return nil, nil
			}
			return noALPN, nil
		}
	}
	return cfg, nil
}

// DefaultSessionCacheSize is how many servers (by sni, or by address without
// one) an upstream TLS context remembers a session for when
// max_session_keys is not set.
const DefaultSessionCacheSize = 64

// ClientConfig builds the config a cluster originates TLS with. Errors name
// the field path relative to c.
//
// Security: as in Envoy, an UpstreamTlsContext without a trusted_ca does not
// verify the upstream's certificate at all, so such a connection is
// encrypted but not authenticated. With a trusted_ca the chain must verify
// with id-kp-serverAuth usage (or no EKU) and, if set, a SAN matcher must
// match; the hostname is never checked. InsecureSkipVerify is always true on
// the result because verification happens in VerifyConnection; do not clear
// it.
//
// TLS sessions are resumed unless max_session_keys is 0: the config carries
// a ClientSessionCache of max_session_keys entries (DefaultSessionCacheSize
// when unset), one entry per server name.
//
// ServerName is sni (empty: no SNI is sent). At most one client certificate
// may be given, as in Envoy. Versions default to TLS 1.2 through 1.3, where
// Envoy's client default stops at 1.2.
func ClientConfig(c *tlsv3.UpstreamTlsContext, s Secrets) (*tls.Config, error) {
	if c == nil {
		return nil, errors.New("not set")
	}
	if c.GetAllowRenegotiation() {
		return nil, errors.New("allow_renegotiation: renegotiation is not supported")
	}
	if strings.IndexByte(c.GetSni(), 0) >= 0 {
		return nil, errors.New("sni: must not contain a NUL byte")
	}
	cc := c.GetCommonTlsContext()
	if n := len(cc.GetTlsCertificates()) + len(cc.GetTlsCertificateSdsSecretConfigs()); n > 1 {
		// envoy: "Multiple TLS certificates are not supported for client contexts".
		return nil, fmt.Errorf("common_tls_context: an upstream takes at most one certificate across tls_certificates and tls_certificate_sds_secret_configs, got %d", n)
	}
	cfg, v, err := newConfig(cc, s, clientDefaults)
	if err != nil {
		return nil, err
	}
	cfg.ServerName = c.GetSni()
	cfg.InsecureSkipVerify = true
	// Session resumption, as Envoy's max_session_keys (default on, 0
	// disables). crypto/tls keeps one session per server name (per address
	// without sni) and still calls VerifyConnection on a resumed
	// connection, with the peer certificates of the original handshake.
	// The cache belongs to this config: a new snapshot with other
	// certificates or trust builds a new config and so starts empty.
	if n := c.GetMaxSessionKeys(); n == nil || n.GetValue() > 0 {
		size := DefaultSessionCacheSize
		if n != nil {
			size = int(min(n.GetValue(), 1<<16))
		}
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(size)
	}
	if v != nil {
		v.usage = x509.ExtKeyUsageServerAuth
		v.requireCert = true
		cfg.VerifyConnection = v.verify
	}
	return cfg, nil
}

// newConfig applies the parts of a CommonTlsContext shared by both sides. cc
// may be nil. The verifier is nil when peers are not verified.
func newConfig(cc *tlsv3.CommonTlsContext, s Secrets, d defaults) (*tls.Config, *verifier, error) {
	const path = "common_tls_context"
	cfg := &tls.Config{}
	if err := applyParams(cfg, cc.GetTlsParams(), path+".tls_params", d); err != nil {
		return nil, nil, err
	}
	certs, err := loadCertificates(cc, s, path)
	if err != nil {
		return nil, nil, err
	}
	cfg.Certificates = certs
	for i, p := range cc.GetAlpnProtocols() {
		if p == "" || len(p) > 255 {
			return nil, nil, fmt.Errorf("%s.alpn_protocols[%d]: protocol name must be 1 to 255 bytes", path, i)
		}
	}
	cfg.NextProtos = slices.Clone(cc.GetAlpnProtocols())
	vc, vpath, err := validationContext(cc, s)
	if err != nil {
		return nil, nil, err
	}
	v, err := newVerifier(vc, vpath)
	if err != nil {
		return nil, nil, err
	}
	return cfg, v, nil
}

func loadCertificates(cc *tlsv3.CommonTlsContext, s Secrets, path string) ([]tls.Certificate, error) {
	var out []tls.Certificate
	for i, tc := range cc.GetTlsCertificates() {
		c, err := keyPair(tc, fmt.Sprintf("%s.tls_certificates[%d]", path, i))
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	for i, ref := range cc.GetTlsCertificateSdsSecretConfigs() {
		p := fmt.Sprintf("%s.tls_certificate_sds_secret_configs[%d]", path, i)
		sec, err := s.lookup(ref.GetName())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		tc := sec.GetTlsCertificate()
		if tc == nil {
			return nil, fmt.Errorf("%s: secret %q has no tls_certificate", p, ref.GetName())
		}
		c, err := keyPair(tc, fmt.Sprintf("%s: secret %q: tls_certificate", p, ref.GetName()))
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// keyPair loads one TlsCertificate. It checks the chain and the key apart
// before tls.X509KeyPair so that errors name the field at fault.
func keyPair(tc *tlsv3.TlsCertificate, path string) (tls.Certificate, error) {
	chain, err := datasource.Read(tc.GetCertificateChain())
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s.certificate_chain: %w", path, err)
	}
	key, err := datasource.Read(tc.GetPrivateKey())
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s.private_key: %w", path, err)
	}
	if _, err := parseCertificates(chain); err != nil {
		return tls.Certificate{}, fmt.Errorf("%s.certificate_chain: %w", path, err)
	}
	if err := checkPrivateKey(key); err != nil {
		return tls.Certificate{}, fmt.Errorf("%s.private_key: %w", path, err)
	}
	c, err := tls.X509KeyPair(chain, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// parseCertificates parses every CERTIFICATE block of a PEM bundle, skipping
// other block types as BoringSSL's PEM_read_bio_X509 does. CRLs are an error:
// revocation checking is not implemented, and silently skipping a CRL would
// accept revoked peers.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch b.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("certificate %d: %w", len(certs), err)
			}
			certs = append(certs, c)
		case "X509 CRL":
			return nil, errors.New("certificate revocation lists are not supported")
		}
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block found")
	}
	return certs, nil
}

// checkPrivateKey parses the first PEM private key block the way
// tls.X509KeyPair picks it.
func checkPrivateKey(data []byte) error {
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return errors.New("no PEM private key block found")
		}
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			_, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			_, err = x509.ParseECPrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			_, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return errors.New("encrypted private keys are not supported")
		default:
			if strings.HasSuffix(b.Type, " PRIVATE KEY") {
				return fmt.Errorf("unsupported PEM block type %q", b.Type)
			}
			continue
		}
		return err
	}
}
