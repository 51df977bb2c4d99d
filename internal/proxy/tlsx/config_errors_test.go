package tlsx

import (
	"testing"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/trellis-mesh/trellis/internal/testutil/certs"
)

func TestServerConfigErrors(t *testing.T) {
	ca := certs.NewCA(t, "mesh")
	leaf := ca.Issue(t, certs.LeafOptions{DNSNames: []string{"a.example.com"}})
	otherKey := ca.Issue(t, certs.LeafOptions{})
	good := tlsCert(leaf)
	secrets := Secrets{
		"ca": {Name: "ca", Type: &tlsv3.Secret_ValidationContext{ValidationContext: validationCtx(ca)}},
		"cert": {Name: "cert", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: fileDS(leaf.CertFile), PrivateKey: fileDS("/nonexistent/key.pem"),
		}}},
	}
	withCerts := func(cc *tlsv3.CommonTlsContext) *tlsv3.CommonTlsContext {
		cc.TlsCertificates = append(cc.TlsCertificates, good)
		return cc
	}
	withVC := func(vc *tlsv3.CertificateValidationContext) *tlsv3.CommonTlsContext {
		return commonCtx(vc, nil, good)
	}
	params := func(p *tlsv3.TlsParameters) *tlsv3.CommonTlsContext {
		return withCerts(&tlsv3.CommonTlsContext{TlsParams: p})
	}
	sds := func(name string) *tlsv3.SdsSecretConfig { return &tlsv3.SdsSecretConfig{Name: name} }

	tests := []struct {
		name    string
		ctx     *tlsv3.DownstreamTlsContext
		wantErr string
	}{
		{
			name:    "nil context",
			ctx:     nil,
			wantErr: "not set",
		},
		{
			name:    "no certificate",
			ctx:     downstream(false, nil),
			wantErr: "common_tls_context: a server needs tls_certificates or tls_certificate_sds_secret_configs",
		},
		{
			name: "missing key file",
			ctx: downstream(false, &tlsv3.CommonTlsContext{TlsCertificates: []*tlsv3.TlsCertificate{
				{CertificateChain: fileDS(leaf.CertFile), PrivateKey: fileDS("/nonexistent/key.pem")},
			}}),
			wantErr: `common_tls_context.tls_certificates[0].private_key: filename "/nonexistent/key.pem": open /nonexistent/key.pem: no such file or directory`,
		},
		{
			name: "chain not set",
			ctx: downstream(false, &tlsv3.CommonTlsContext{TlsCertificates: []*tlsv3.TlsCertificate{
				good, {PrivateKey: fileDS(leaf.KeyFile)},
			}}),
			wantErr: "common_tls_context.tls_certificates[1].certificate_chain: not set",
		},
		{
			name: "bad PEM chain",
			ctx: downstream(false, &tlsv3.CommonTlsContext{TlsCertificates: []*tlsv3.TlsCertificate{
				{CertificateChain: inlineDS("not pem"), PrivateKey: fileDS(leaf.KeyFile)},
			}}),
			wantErr: "common_tls_context.tls_certificates[0].certificate_chain: no PEM CERTIFICATE block found",
		},
		{
			name: "corrupt certificate in chain",
			ctx: downstream(false, &tlsv3.CommonTlsContext{TlsCertificates: []*tlsv3.TlsCertificate{
				{CertificateChain: inlineDS("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), PrivateKey: fileDS(leaf.KeyFile)},
			}}),
			wantErr: "common_tls_context.tls_certificates[0].certificate_chain: certificate 0: x509: malformed certificate",
		},
		{
			name: "bad PEM key",
			ctx: downstream(false, &tlsv3.CommonTlsContext{TlsCertificates: []*tlsv3.TlsCertificate{
				{CertificateChain: fileDS(leaf.CertFile), PrivateKey: inlineDS("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")},
			}}),
			wantErr: "common_tls_context.tls_certificates[0].private_key: no PEM private key block found",
		},
		{
			name: "corrupt key",
			ctx: downstream(false, &tlsv3.CommonTlsContext{TlsCertificates: []*tlsv3.TlsCertificate{
				{CertificateChain: fileDS(leaf.CertFile), PrivateKey: inlineDS("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")},
			}}),
			wantErr: "common_tls_context.tls_certificates[0].private_key: ",
		},
		{
			name: "key of another certificate",
			ctx: downstream(false, &tlsv3.CommonTlsContext{TlsCertificates: []*tlsv3.TlsCertificate{
				{CertificateChain: fileDS(leaf.CertFile), PrivateKey: fileDS(otherKey.KeyFile)},
			}}),
			wantErr: "common_tls_context.tls_certificates[0]: tls: private key does not match public key",
		},
		{
			name:    "unknown certificate secret",
			ctx:     downstream(false, &tlsv3.CommonTlsContext{TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds("nope")}}),
			wantErr: `common_tls_context.tls_certificate_sds_secret_configs[0]: secret "nope" not found`,
		},
		{
			name:    "certificate secret of the wrong type",
			ctx:     downstream(false, &tlsv3.CommonTlsContext{TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds("ca")}}),
			wantErr: `common_tls_context.tls_certificate_sds_secret_configs[0]: secret "ca" has no tls_certificate`,
		},
		{
			name:    "error inside a certificate secret",
			ctx:     downstream(false, &tlsv3.CommonTlsContext{TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds("cert")}}),
			wantErr: `common_tls_context.tls_certificate_sds_secret_configs[0]: secret "cert": tls_certificate.private_key: filename "/nonexistent/key.pem"`,
		},
		{
			name: "unknown validation secret",
			ctx: downstream(false, withCerts(&tlsv3.CommonTlsContext{
				ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: sds("nope")},
			})),
			wantErr: `common_tls_context.validation_context_sds_secret_config: secret "nope" not found`,
		},
		{
			name: "validation secret of the wrong type",
			ctx: downstream(false, withCerts(&tlsv3.CommonTlsContext{
				ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: sds("cert")},
			})),
			wantErr: `common_tls_context.validation_context_sds_secret_config: secret "cert" has no validation_context`,
		},
		{
			name: "unknown combined validation secret",
			ctx: downstream(false, withCerts(&tlsv3.CommonTlsContext{
				ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext:         &tlsv3.CertificateValidationContext{},
					ValidationContextSdsSecretConfig: sds("nope"),
				}},
			})),
			wantErr: `common_tls_context.combined_validation_context.validation_context_sds_secret_config: secret "nope" not found`,
		},
		{
			name:    "missing trusted_ca file",
			ctx:     downstream(false, withVC(&tlsv3.CertificateValidationContext{TrustedCa: fileDS("/nonexistent/ca.pem")})),
			wantErr: `common_tls_context.validation_context.trusted_ca: filename "/nonexistent/ca.pem": open`,
		},
		{
			name:    "bad PEM trusted_ca",
			ctx:     downstream(false, withVC(&tlsv3.CertificateValidationContext{TrustedCa: inlineDS("junk")})),
			wantErr: "common_tls_context.validation_context.trusted_ca: no PEM CERTIFICATE block found",
		},
		{
			name:    "CRL in trusted_ca",
			ctx:     downstream(false, withVC(&tlsv3.CertificateValidationContext{TrustedCa: inlineDS(string(ca.PEM()) + "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n")})),
			wantErr: "common_tls_context.validation_context.trusted_ca: certificate revocation lists are not supported",
		},
		{
			name: "bad regex",
			ctx: downstream(false, withVC(validationCtx(ca,
				san(tlsv3.SubjectAltNameMatcher_URI, exact("spiffe://example.org/a")),
				san(tlsv3.SubjectAltNameMatcher_URI, regex("(")),
			))),
			wantErr: "common_tls_context.validation_context.match_typed_subject_alt_names[1].matcher: safe_regex: regex: error parsing regexp",
		},
		{
			name:    "SAN type unset",
			ctx:     downstream(false, withVC(validationCtx(ca, san(tlsv3.SubjectAltNameMatcher_SAN_TYPE_UNSPECIFIED, exact("x"))))),
			wantErr: "common_tls_context.validation_context.match_typed_subject_alt_names[0].san_type: must be set",
		},
		{
			name:    "SAN type OTHER_NAME",
			ctx:     downstream(false, withVC(validationCtx(ca, san(tlsv3.SubjectAltNameMatcher_OTHER_NAME, exact("x"))))),
			wantErr: "common_tls_context.validation_context.match_typed_subject_alt_names[0].san_type: OTHER_NAME is not supported",
		},
		{
			name:    "SAN matcher unset",
			ctx:     downstream(false, withVC(validationCtx(ca, san(tlsv3.SubjectAltNameMatcher_DNS, nil)))),
			wantErr: "common_tls_context.validation_context.match_typed_subject_alt_names[0].matcher: not set",
		},
		{
			name:    "SAN matchers without trusted_ca",
			ctx:     downstream(false, withVC(validationCtx(nil, san(tlsv3.SubjectAltNameMatcher_DNS, exact("x"))))),
			wantErr: "common_tls_context.validation_context: SAN matchers without trusted_ca are insecure and not allowed",
		},
		{
			name: "typed and deprecated SAN matchers together",
			ctx: downstream(false, withVC(&tlsv3.CertificateValidationContext{
				TrustedCa:                 fileDS(ca.File()),
				MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{san(tlsv3.SubjectAltNameMatcher_DNS, exact("x"))},
				//lint:ignore SA1019 the deprecated field is tested on purpose.
				MatchSubjectAltNames: []*matcherv3.StringMatcher{exact("y")},
			})),
			wantErr: "common_tls_context.validation_context: match_typed_subject_alt_names and the deprecated match_subject_alt_names cannot both be set",
		},
		{
			name:    "require_client_certificate without trusted_ca",
			ctx:     downstream(true, withCerts(&tlsv3.CommonTlsContext{})),
			wantErr: "require_client_certificate: needs a validation context with trusted_ca",
		},
		{
			name:    "unknown cipher suite",
			ctx:     downstream(false, params(&tlsv3.TlsParameters{CipherSuites: []string{"ECDHE-RSA-AES128-GCM-SHA256", "FOO-BAR"}})),
			wantErr: `common_tls_context.tls_params.cipher_suites[1]: unknown or unsupported name "FOO-BAR"`,
		},
		{
			name:    "TLS 1.3 cipher suite name",
			ctx:     downstream(false, params(&tlsv3.TlsParameters{CipherSuites: []string{"TLS_AES_128_GCM_SHA256"}})),
			wantErr: `common_tls_context.tls_params.cipher_suites[0]: unknown or unsupported name "TLS_AES_128_GCM_SHA256"`,
		},
		{
			name:    "empty cipher suite",
			ctx:     downstream(false, params(&tlsv3.TlsParameters{CipherSuites: []string{""}})),
			wantErr: "common_tls_context.tls_params.cipher_suites[0]: empty",
		},
		{
			name:    "unknown curve",
			ctx:     downstream(false, params(&tlsv3.TlsParameters{EcdhCurves: []string{"P-256", "P-224"}})),
			wantErr: `common_tls_context.tls_params.ecdh_curves[1]: unknown or unsupported name "P-224"`,
		},
		{
			name: "minimum above maximum",
			ctx: downstream(false, params(&tlsv3.TlsParameters{
				TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_3,
				TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_2,
			})),
			wantErr: "common_tls_context.tls_params: tls_minimum_protocol_version TLS 1.3 is above tls_maximum_protocol_version TLS 1.2",
		},
		{
			name:    "unknown version",
			ctx:     downstream(false, params(&tlsv3.TlsParameters{TlsMaximumProtocolVersion: 9})),
			wantErr: "common_tls_context.tls_params.tls_maximum_protocol_version: unknown version 9",
		},
		{
			name:    "empty ALPN name",
			ctx:     downstream(false, withCerts(&tlsv3.CommonTlsContext{AlpnProtocols: []string{"h2", ""}})),
			wantErr: "common_tls_context.alpn_protocols[1]: protocol name must be 1 to 255 bytes",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ServerConfig(tc.ctx, secrets)
			checkErr(t, "ServerConfig()", err, tc.wantErr)
			if err != nil && cfg != nil {
				t.Errorf("ServerConfig() returned a config with an error")
			}
		})
	}
}

func TestClientConfigErrors(t *testing.T) {
	ca := certs.NewCA(t, "mesh")
	leaf := ca.Issue(t, certs.LeafOptions{})
	tests := []struct {
		name    string
		ctx     *tlsv3.UpstreamTlsContext
		wantErr string
	}{
		{
			name:    "nil context",
			wantErr: "not set",
		},
		{
			name:    "renegotiation",
			ctx:     &tlsv3.UpstreamTlsContext{AllowRenegotiation: true},
			wantErr: "allow_renegotiation: renegotiation is not supported",
		},
		{
			name:    "NUL in SNI",
			ctx:     &tlsv3.UpstreamTlsContext{Sni: "a\x00b"},
			wantErr: "sni: must not contain a NUL byte",
		},
		{
			name: "two client certificates",
			ctx: &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
				TlsCertificates:                []*tlsv3.TlsCertificate{tlsCert(leaf)},
				TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "x"}},
			}},
			wantErr: "common_tls_context: an upstream takes at most one certificate across tls_certificates and tls_certificate_sds_secret_configs, got 2",
		},
		{
			name:    "SAN matcher without trusted_ca",
			ctx:     &tlsv3.UpstreamTlsContext{CommonTlsContext: commonCtx(validationCtx(nil, san(tlsv3.SubjectAltNameMatcher_URI, prefix("spiffe://"))), nil)},
			wantErr: "common_tls_context.validation_context: SAN matchers without trusted_ca are insecure and not allowed",
		},
		{
			name:    "empty client certificate",
			ctx:     &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{TlsCertificates: []*tlsv3.TlsCertificate{{}}}},
			wantErr: "common_tls_context.tls_certificates[0].certificate_chain: not set",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ClientConfig(tc.ctx, nil)
			checkErr(t, "ClientConfig()", err, tc.wantErr)
		})
	}
	if _, err := ClientConfig(&tlsv3.UpstreamTlsContext{}, nil); err != nil {
		t.Errorf("ClientConfig(empty context) error = %v, want a config without verification", err)
	}
}
