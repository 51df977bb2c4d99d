package tlsx

import (
	"crypto/tls"
	"testing"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/google/go-cmp/cmp"
)

func TestApplyParams(t *testing.T) {
	type result struct {
		Min, Max uint16
		Suites   []uint16
		Curves   []tls.CurveID
	}
	tests := []struct {
		name   string
		params *tlsv3.TlsParameters
		want   result
	}{
		{
			name: "unset takes Envoy's cipher suites and crypto/tls's curves",
			want: result{Min: tls.VersionTLS12, Max: tls.VersionTLS13, Suites: defaultCipherSuites},
		},
		{
			name: "TLS_AUTO is the default",
			params: &tlsv3.TlsParameters{
				TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLS_AUTO,
				TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLS_AUTO,
			},
			want: result{Min: tls.VersionTLS12, Max: tls.VersionTLS13, Suites: defaultCipherSuites},
		},
		{
			name: "versions, equal-preference groups and aliases",
			params: &tlsv3.TlsParameters{
				TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2,
				TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_2,
				CipherSuites: []string{
					"[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]",
					"ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256",
				},
				EcdhCurves: []string{"X25519", "prime256v1", "P-384"},
			},
			want: result{
				Min: tls.VersionTLS12, Max: tls.VersionTLS12,
				Suites: []uint16{
					tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
					tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
					tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
				},
				Curves: []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cfg tls.Config
			if err := applyParams(&cfg, tc.params, "tls_params", serverDefaults); err != nil {
				t.Fatal(err)
			}
			got := result{Min: cfg.MinVersion, Max: cfg.MaxVersion, Suites: cfg.CipherSuites, Curves: cfg.CurvePreferences}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("applyParams() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCipherSuiteNamesMatchCryptoTLS(t *testing.T) {
	// Each mapping must point at a suite crypto/tls implements for TLS 1.2.
	known := map[uint16]bool{}
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		for _, v := range s.SupportedVersions {
			if v == tls.VersionTLS12 {
				known[s.ID] = true
			}
		}
	}
	for name, id := range cipherSuites {
		if !known[id] {
			t.Errorf("%s maps to %s, which crypto/tls does not offer for TLS 1.2", name, tls.CipherSuiteName(id))
		}
	}
}
