package tlsx

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"

	"github.com/trellis-mesh/trellis/internal/proxy/datasource"
)

// validationContext returns the effective CertificateValidationContext of cc
// (nil if none) and the path that names it in errors.
func validationContext(cc *tlsv3.CommonTlsContext, s Secrets) (*tlsv3.CertificateValidationContext, string, error) {
	const path = "common_tls_context"
	switch t := cc.GetValidationContextType().(type) {
	case nil:
		return nil, "", nil
	case *tlsv3.CommonTlsContext_ValidationContext:
		return t.ValidationContext, path + ".validation_context", nil
	case *tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig:
		p := path + ".validation_context_sds_secret_config"
		vc, err := sdsValidationContext(t.ValidationContextSdsSecretConfig, s)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", p, err)
		}
		return vc, fmt.Sprintf("%s: secret %q: validation_context", p, t.ValidationContextSdsSecretConfig.GetName()), nil
	case *tlsv3.CommonTlsContext_CombinedValidationContext:
		p := path + ".combined_validation_context"
		dyn, err := sdsValidationContext(t.CombinedValidationContext.GetValidationContextSdsSecretConfig(), s)
		if err != nil {
			return nil, "", fmt.Errorf("%s.validation_context_sds_secret_config: %w", p, err)
		}
		// envoy: ContextConfigImpl::getCombinedValidationContextConfig copies
		// default_validation_context and MergeFrom()s the secret into it:
		// fields set in the secret win, repeated fields (the SAN matchers)
		// are appended after the default's.
		merged := &tlsv3.CertificateValidationContext{}
		if def := t.CombinedValidationContext.GetDefaultValidationContext(); def != nil {
			proto.Merge(merged, def)
		}
		proto.Merge(merged, dyn)
		return merged, p, nil
	default:
		return nil, "", fmt.Errorf("%s: validation context type %T is not supported", path, t)
	}
}

func sdsValidationContext(ref *tlsv3.SdsSecretConfig, s Secrets) (*tlsv3.CertificateValidationContext, error) {
	if ref == nil {
		return nil, errors.New("not set")
	}
	sec, err := s.lookup(ref.GetName())
	if err != nil {
		return nil, err
	}
	vc := sec.GetValidationContext()
	if vc == nil {
		return nil, fmt.Errorf("secret %q has no validation_context", ref.GetName())
	}
	return vc, nil
}

// verifier checks a peer's certificate the way Envoy's DefaultCertValidator
// does: the chain against trusted_ca, then the leaf's SANs against the
// matchers. It is immutable once built by newVerifier and its side sets
// usage and requireCert.
type verifier struct {
	roots *x509.CertPool
	sans  []sanMatcher
	// usage is the purpose the chain must allow. Envoy verifies with
	// BoringSSL's "ssl_client" purpose on servers and "ssl_server" on
	// clients (envoy: DefaultCertValidator::doVerifyCertChain), which
	// rejects a leaf whose EKUs lack it; a leaf without EKUs passes.
	usage       x509.ExtKeyUsage
	requireCert bool
}

// newVerifier compiles vc. It returns nil when vc verifies nothing: no
// trusted_ca, as Envoy does not verify without one.
func newVerifier(vc *tlsv3.CertificateValidationContext, path string) (*verifier, error) {
	if vc == nil {
		return nil, nil
	}
	v := &verifier{}
	if ds := vc.GetTrustedCa(); ds != nil {
		data, err := datasource.Read(ds)
		if err != nil {
			return nil, fmt.Errorf("%s.trusted_ca: %w", path, err)
		}
		certs, err := parseCertificates(data)
		if err != nil {
			return nil, fmt.Errorf("%s.trusted_ca: %w", path, err)
		}
		v.roots = x509.NewCertPool()
		for _, c := range certs {
			v.roots.AddCert(c)
		}
	}
	//lint:ignore SA1019 Envoy still honours this deprecated field; so does Trellis.
	typed, legacy := vc.GetMatchTypedSubjectAltNames(), vc.GetMatchSubjectAltNames()
	if len(typed) > 0 && len(legacy) > 0 {
		// envoy: getSubjectAltNameMatchers throws on this, though the proto
		// comment says the deprecated field is ignored.
		return nil, fmt.Errorf("%s: match_typed_subject_alt_names and the deprecated match_subject_alt_names cannot both be set", path)
	}
	for i, m := range typed {
		sm, err := newSANMatcher(m.GetSanType(), m.GetMatcher(), fmt.Sprintf("%s.match_typed_subject_alt_names[%d]", path, i))
		if err != nil {
			return nil, err
		}
		v.sans = append(v.sans, sm)
	}
	for i, m := range legacy {
		// envoy: the deprecated field becomes one matcher per SAN type
		// DNS, URI, EMAIL and IP_ADDRESS.
		p := fmt.Sprintf("%s.match_subject_alt_names[%d]", path, i)
		for _, typ := range []tlsv3.SubjectAltNameMatcher_SanType{
			tlsv3.SubjectAltNameMatcher_DNS, tlsv3.SubjectAltNameMatcher_URI,
			tlsv3.SubjectAltNameMatcher_EMAIL, tlsv3.SubjectAltNameMatcher_IP_ADDRESS,
		} {
			sm, err := newStringSANMatcher(typ, m, p)
			if err != nil {
				return nil, err
			}
			v.sans = append(v.sans, sm)
		}
	}
	if v.roots == nil {
		if len(v.sans) > 0 {
			// envoy: "SAN-based verification of peer certificates without
			// trusted CA is insecure and not allowed".
			return nil, fmt.Errorf("%s: SAN matchers without trusted_ca are insecure and not allowed", path)
		}
		return nil, nil
	}
	return v, nil
}

// verify is a tls.Config.VerifyConnection. It runs on full handshakes and
// resumptions alike, so a resumed session is re-checked against the current
// config.
func (v *verifier) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		if v.requireCert {
			return errors.New("tlsx: peer presented no certificate")
		}
		return nil
	}
	leaf := cs.PeerCertificates[0]
	opts := x509.VerifyOptions{
		Roots:     v.roots,
		KeyUsages: []x509.ExtKeyUsage{v.usage},
	}
	if len(cs.PeerCertificates) > 1 {
		opts.Intermediates = x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
	}
	if _, err := leaf.Verify(opts); err != nil {
		return fmt.Errorf("tlsx: verify peer certificate: %w", err)
	}
	if len(v.sans) > 0 && !matchSANs(leaf, v.sans) {
		return errors.New("tlsx: no subject alternative name of the peer certificate matches")
	}
	return nil
}
