package tlsx

import (
	"crypto/tls"
	"testing"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/trellis-mesh/trellis/internal/testutil/certs"
)

const (
	frontendID = "spiffe://example.org/ns/a/sa/frontend"
	backendID  = "spiffe://example.org/ns/b/sa/backend"
)

// pki is the set of certificates the handshake tests use.
type pki struct {
	ca, other, inter *certs.CA
	server           *certs.Leaf // backend.example.com, backendID, from ca
	client           *certs.Leaf // frontendID, from ca
	clientOther      *certs.Leaf // frontendID, from other
	clientInter      *certs.Leaf // frontendID, from inter (under ca)
	clientWildcard   *certs.Leaf // *.frontend.example.com, from ca
	clientServerEKU  *certs.Leaf // frontendID, server usage only
	serverClientEKU  *certs.Leaf // backend.example.com, client usage only
}

func newPKI(t *testing.T) *pki {
	ca, other := certs.NewCA(t, "mesh"), certs.NewCA(t, "other")
	inter := ca.NewIntermediate(t, "mesh-intermediate")
	return &pki{
		ca: ca, other: other, inter: inter,
		server:          ca.Issue(t, certs.LeafOptions{DNSNames: []string{"backend.example.com"}, URIs: []string{backendID}}),
		client:          ca.Issue(t, certs.LeafOptions{URIs: []string{frontendID}, IPs: []string{"10.0.0.7"}}),
		clientOther:     other.Issue(t, certs.LeafOptions{URIs: []string{frontendID}}),
		clientInter:     inter.Issue(t, certs.LeafOptions{URIs: []string{frontendID}}),
		clientWildcard:  ca.Issue(t, certs.LeafOptions{DNSNames: []string{"*.frontend.example.com"}}),
		clientServerEKU: ca.Issue(t, certs.LeafOptions{URIs: []string{frontendID}, Usage: certs.Server}),
		serverClientEKU: ca.Issue(t, certs.LeafOptions{DNSNames: []string{"backend.example.com"}, Usage: certs.Client}),
	}
}

func TestServerConfigHandshake(t *testing.T) {
	p := newPKI(t)
	serverCC := func(vc *tlsv3.CertificateValidationContext, alpn ...string) *tlsv3.CommonTlsContext {
		return commonCtx(vc, alpn, tlsCert(p.server))
	}
	tests := []struct {
		name       string
		ctx        *tlsv3.DownstreamTlsContext
		clientCert *certs.Leaf // nil: no client certificate
		clientCfg  *tls.Config // extra client settings; nil for none
		wantErr    string      // server side
		wantPeer   bool        // server saw a client certificate
		wantALPN   string
		wantVer    uint16
	}{
		{
			name:       "mtls required with trusted client",
			ctx:        downstream(true, serverCC(validationCtx(p.ca))),
			clientCert: p.client,
			wantPeer:   true,
		},
		{
			name:    "mtls required rejects client without certificate",
			ctx:     downstream(true, serverCC(validationCtx(p.ca))),
			wantErr: "client didn't provide a certificate",
		},
		{
			name:       "untrusted CA fails",
			ctx:        downstream(true, serverCC(validationCtx(p.ca))),
			clientCert: p.clientOther,
			wantErr:    "certificate signed by unknown authority",
		},
		{
			name: "optional client certificate may be absent",
			ctx:  downstream(false, serverCC(validationCtx(p.ca))),
		},
		{
			name:       "optional client certificate is verified when presented",
			ctx:        downstream(false, serverCC(validationCtx(p.ca))),
			clientCert: p.clientOther,
			wantErr:    "certificate signed by unknown authority",
		},
		{
			name:       "chain through presented intermediate",
			ctx:        downstream(true, serverCC(validationCtx(p.ca))),
			clientCert: p.clientInter,
			wantPeer:   true,
		},
		{
			name:       "trusted intermediate is a partial-chain anchor",
			ctx:        downstream(true, serverCC(validationCtx(p.inter))),
			clientCert: p.clientInter,
			wantPeer:   true,
		},
		{
			name:       "client certificate without clientAuth usage fails",
			ctx:        downstream(true, serverCC(validationCtx(p.ca))),
			clientCert: p.clientServerEKU,
			wantErr:    "incompatible key usage",
		},
		{
			name:       "URI SAN exact match",
			ctx:        downstream(true, serverCC(validationCtx(p.ca, san(tlsv3.SubjectAltNameMatcher_URI, exact(frontendID))))),
			clientCert: p.client,
			wantPeer:   true,
		},
		{
			name:       "URI SAN mismatch fails",
			ctx:        downstream(true, serverCC(validationCtx(p.ca, san(tlsv3.SubjectAltNameMatcher_URI, exact("spiffe://example.org/ns/a/sa/other"))))),
			clientCert: p.client,
			wantErr:    "no subject alternative name of the peer certificate matches",
		},
		{
			name: "URI SAN prefix match, any of several matchers",
			ctx: downstream(true, serverCC(validationCtx(p.ca,
				san(tlsv3.SubjectAltNameMatcher_URI, prefix("spiffe://example.org/ns/z/")),
				san(tlsv3.SubjectAltNameMatcher_URI, prefix("spiffe://example.org/ns/a/"))))),
			clientCert: p.client,
			wantPeer:   true,
		},
		{
			name:       "URI SAN regex match",
			ctx:        downstream(true, serverCC(validationCtx(p.ca, san(tlsv3.SubjectAltNameMatcher_URI, regex(`spiffe://example\.org/ns/[a-z]+/sa/frontend`))))),
			clientCert: p.client,
			wantPeer:   true,
		},
		{
			name:       "regex is anchored",
			ctx:        downstream(true, serverCC(validationCtx(p.ca, san(tlsv3.SubjectAltNameMatcher_URI, regex(`spiffe://example\.org/ns/a`))))),
			clientCert: p.client,
			wantErr:    "no subject alternative name",
		},
		{
			name:       "SAN type must agree: URI value as DNS fails",
			ctx:        downstream(true, serverCC(validationCtx(p.ca, san(tlsv3.SubjectAltNameMatcher_DNS, exact(frontendID))))),
			clientCert: p.client,
			wantErr:    "no subject alternative name",
		},
		{
			name:       "IP SAN match",
			ctx:        downstream(true, serverCC(validationCtx(p.ca, san(tlsv3.SubjectAltNameMatcher_IP_ADDRESS, exact("10.0.0.7"))))),
			clientCert: p.client,
			wantPeer:   true,
		},
		{
			name:       "DNS exact matches a wildcard SAN",
			ctx:        downstream(true, serverCC(validationCtx(p.ca, san(tlsv3.SubjectAltNameMatcher_DNS, exact("api.frontend.example.com"))))),
			clientCert: p.clientWildcard,
			wantPeer:   true,
		},
		{
			name:       "DNS wildcard covers one label only",
			ctx:        downstream(true, serverCC(validationCtx(p.ca, san(tlsv3.SubjectAltNameMatcher_DNS, exact("a.b.frontend.example.com"))))),
			clientCert: p.clientWildcard,
			wantErr:    "no subject alternative name",
		},
		{
			name:       "DNS prefix matcher compares the raw SAN",
			ctx:        downstream(true, serverCC(validationCtx(p.ca, san(tlsv3.SubjectAltNameMatcher_DNS, prefix("*.frontend."))))),
			clientCert: p.clientWildcard,
			wantPeer:   true,
		},
		{
			name:    "SAN matcher makes the client certificate required",
			ctx:     downstream(false, serverCC(validationCtx(p.ca, san(tlsv3.SubjectAltNameMatcher_URI, exact(frontendID))))),
			wantErr: "client didn't provide a certificate",
		},
		{
			name: "deprecated match_subject_alt_names matches any SAN type",
			ctx: downstream(true, serverCC(&tlsv3.CertificateValidationContext{
				TrustedCa: fileDS(p.ca.File()),
				//lint:ignore SA1019 the deprecated field is tested on purpose.
				MatchSubjectAltNames: []*matcherv3.StringMatcher{exact(frontendID)},
			})),
			clientCert: p.client,
			wantPeer:   true,
		},
		{
			name:      "ALPN negotiated in server order",
			ctx:       downstream(false, serverCC(nil, "h2", "http/1.1")),
			clientCfg: &tls.Config{NextProtos: []string{"http/1.1", "h2"}},
			wantALPN:  "h2",
		},
		{
			name:      "no ALPN overlap carries on without ALPN, as Envoy",
			ctx:       downstream(false, serverCC(nil, "h2")),
			clientCfg: &tls.Config{NextProtos: []string{"spdy/3"}},
			wantALPN:  "",
		},
		{
			name: "maximum version honoured",
			ctx: downstream(false, &tlsv3.CommonTlsContext{
				TlsCertificates: []*tlsv3.TlsCertificate{tlsCert(p.server)},
				TlsParams:       &tlsv3.TlsParameters{TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_2},
			}),
			wantVer: tls.VersionTLS12,
		},
		{
			name: "minimum version honoured",
			ctx: downstream(false, &tlsv3.CommonTlsContext{
				TlsCertificates: []*tlsv3.TlsCertificate{tlsCert(p.server)},
				TlsParams:       &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_3},
			}),
			clientCfg: &tls.Config{MaxVersion: tls.VersionTLS12},
			wantErr:   "unsupported versions",
		},
		{
			name:    "default maximum is TLS 1.3",
			ctx:     downstream(false, serverCC(nil)),
			wantVer: tls.VersionTLS13,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ServerConfig(tc.ctx, nil)
			if err != nil {
				t.Fatalf("ServerConfig() error = %v", err)
			}
			cli := &tls.Config{}
			if tc.clientCfg != nil {
				cli = tc.clientCfg.Clone()
			}
			cli.InsecureSkipVerify = true
			if tc.clientCert != nil {
				// Send the certificate even when the server's
				// certificate_authorities do not list its issuer (crypto/tls
				// would withhold it; BoringSSL sends it).
				cert := tc.clientCert.TLS
				cli.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
			}
			srv, c := handshake(t, cfg, cli)
			checkErr(t, "server", srv.err, tc.wantErr)
			if tc.wantErr != "" {
				if c.err == nil {
					t.Errorf("client: handshake succeeded, want it to fail with the server")
				}
				return
			}
			checkErr(t, "client", c.err, "")
			if got := len(srv.state.PeerCertificates) > 0; got != tc.wantPeer {
				t.Errorf("server saw a client certificate: %v, want %v", got, tc.wantPeer)
			}
			if srv.state.NegotiatedProtocol != tc.wantALPN {
				t.Errorf("ALPN = %q, want %q", srv.state.NegotiatedProtocol, tc.wantALPN)
			}
			if tc.wantVer != 0 && srv.state.Version != tc.wantVer {
				t.Errorf("version = %s, want %s", tls.VersionName(srv.state.Version), tls.VersionName(tc.wantVer))
			}
		})
	}
}

func TestClientConfigHandshake(t *testing.T) {
	p := newPKI(t)
	upstream := func(sni string, vc *tlsv3.CertificateValidationContext) *tlsv3.UpstreamTlsContext {
		return &tlsv3.UpstreamTlsContext{Sni: sni, CommonTlsContext: commonCtx(vc, nil)}
	}
	tests := []struct {
		name       string
		ctx        *tlsv3.UpstreamTlsContext
		serverCert *certs.Leaf
		serverCfg  *tls.Config
		wantErr    string // client side
		wantSNI    string
		wantPeer   bool // server saw a client certificate
		wantALPN   string
	}{
		{
			name:       "without trusted_ca any server is accepted, as Envoy",
			ctx:        upstream("", nil),
			serverCert: p.clientOther,
		},
		{
			name:       "trusted server",
			ctx:        upstream("", validationCtx(p.ca)),
			serverCert: p.server,
		},
		{
			name:       "untrusted CA fails",
			ctx:        upstream("", validationCtx(p.ca)),
			serverCert: p.clientOther,
			wantErr:    "certificate signed by unknown authority",
		},
		{
			name:       "server certificate without serverAuth usage fails",
			ctx:        upstream("", validationCtx(p.ca)),
			serverCert: p.serverClientEKU,
			wantErr:    "incompatible key usage",
		},
		{
			name:       "SNI is sent, hostname is not verified",
			ctx:        upstream("not-in-the-cert.example.com", validationCtx(p.ca)),
			serverCert: p.server,
			wantSNI:    "not-in-the-cert.example.com",
		},
		{
			name:       "URI SAN of the server matches",
			ctx:        upstream("backend.example.com", validationCtx(p.ca, san(tlsv3.SubjectAltNameMatcher_URI, exact(backendID)))),
			serverCert: p.server,
			wantSNI:    "backend.example.com",
		},
		{
			name:       "URI SAN of the server mismatches",
			ctx:        upstream("", validationCtx(p.ca, san(tlsv3.SubjectAltNameMatcher_URI, exact(frontendID)))),
			serverCert: p.server,
			wantErr:    "no subject alternative name",
		},
		{
			name:       "DNS SAN case-insensitive",
			ctx:        upstream("", validationCtx(p.ca, san(tlsv3.SubjectAltNameMatcher_DNS, exact("Backend.Example.COM")))),
			serverCert: p.server,
		},
		{
			name:       "client certificate and ALPN",
			ctx:        &tlsv3.UpstreamTlsContext{CommonTlsContext: commonCtx(validationCtx(p.ca), []string{"h2"}, tlsCert(p.client))},
			serverCert: p.server,
			serverCfg:  &tls.Config{ClientAuth: tls.RequireAnyClientCert, NextProtos: []string{"http/1.1", "h2"}},
			wantPeer:   true,
			wantALPN:   "h2",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ClientConfig(tc.ctx, nil)
			if err != nil {
				t.Fatalf("ClientConfig() error = %v", err)
			}
			srvCfg := &tls.Config{}
			if tc.serverCfg != nil {
				srvCfg = tc.serverCfg.Clone()
			}
			srvCfg.Certificates = []tls.Certificate{tc.serverCert.TLS}
			srv, c := handshake(t, srvCfg, cfg)
			checkErr(t, "client", c.err, tc.wantErr)
			if tc.wantErr != "" {
				return
			}
			checkErr(t, "server", srv.err, "")
			if srv.state.ServerName != tc.wantSNI {
				t.Errorf("server saw SNI %q, want %q", srv.state.ServerName, tc.wantSNI)
			}
			if got := len(srv.state.PeerCertificates) > 0; got != tc.wantPeer {
				t.Errorf("server saw a client certificate: %v, want %v", got, tc.wantPeer)
			}
			if c.state.NegotiatedProtocol != tc.wantALPN {
				t.Errorf("ALPN = %q, want %q", c.state.NegotiatedProtocol, tc.wantALPN)
			}
		})
	}
}

func TestSecrets(t *testing.T) {
	p := newPKI(t)
	secrets := Secrets{
		"server-cert": {Name: "server-cert", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: tlsCert(p.server)}},
		"client-cert": {Name: "client-cert", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: tlsCert(p.client)}},
		"mesh-ca": {Name: "mesh-ca", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: fileDS(p.ca.File()),
		}}},
	}
	sds := func(name string) *tlsv3.SdsSecretConfig { return &tlsv3.SdsSecretConfig{Name: name} }
	tests := []struct {
		name       string
		ctx        *tlsv3.DownstreamTlsContext
		clientCert *certs.Leaf
		wantErr    string
	}{
		{
			name: "certificate and validation context by name",
			ctx: downstream(true, &tlsv3.CommonTlsContext{
				TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds("server-cert")},
				ValidationContextType:          &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: sds("mesh-ca")},
			}),
			clientCert: p.client,
		},
		{
			name: "combined validation context: default SAN matcher, CA from the secret",
			ctx: downstream(true, &tlsv3.CommonTlsContext{
				TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds("server-cert")},
				ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext: &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{
						san(tlsv3.SubjectAltNameMatcher_URI, exact(frontendID)),
					}},
					ValidationContextSdsSecretConfig: sds("mesh-ca"),
				}},
			}),
			clientCert: p.client,
		},
		{
			name: "combined validation context keeps the default's SAN matchers",
			ctx: downstream(true, &tlsv3.CommonTlsContext{
				TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds("server-cert")},
				ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext: &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{
						san(tlsv3.SubjectAltNameMatcher_URI, exact(backendID)),
					}},
					ValidationContextSdsSecretConfig: sds("mesh-ca"),
				}},
			}),
			clientCert: p.client,
			wantErr:    "no subject alternative name",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ServerConfig(tc.ctx, secrets)
			if err != nil {
				t.Fatalf("ServerConfig() error = %v", err)
			}
			cli := &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{tc.clientCert.TLS}}
			srv, _ := handshake(t, cfg, cli)
			checkErr(t, "server", srv.err, tc.wantErr)
		})
	}

	t.Run("upstream client certificate by name", func(t *testing.T) {
		cfg, err := ClientConfig(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds("client-cert")},
		}}, secrets)
		if err != nil {
			t.Fatal(err)
		}
		srv, _ := handshake(t, &tls.Config{Certificates: []tls.Certificate{p.server.TLS}, ClientAuth: tls.RequireAnyClientCert}, cfg)
		checkErr(t, "server", srv.err, "")
	})
}

func TestServerPicksCertificateBySNI(t *testing.T) {
	ca := certs.NewCA(t, "mesh")
	a := ca.Issue(t, certs.LeafOptions{DNSNames: []string{"a.example.com"}})
	b := ca.Issue(t, certs.LeafOptions{DNSNames: []string{"b.example.com"}})
	cfg, err := ServerConfig(downstream(false, &tlsv3.CommonTlsContext{
		TlsCertificates: []*tlsv3.TlsCertificate{tlsCert(a), tlsCert(b)},
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, sni := range []string{"a.example.com", "b.example.com"} {
		_, c := handshake(t, cfg, &tls.Config{ServerName: sni, RootCAs: ca.Pool()})
		checkErr(t, sni, c.err, "")
	}
}
