package tlsx

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strings"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// defaults are the values of unset tls_params fields for one side.
type defaults struct {
	minVersion, maxVersion uint16
}

var (
	// Envoy's server defaults are TLSv1_2..TLSv1_3. Its client default
	// maximum is TLSv1_2; Trellis offers TLSv1_3 upstream too (README.md).
	serverDefaults = defaults{minVersion: tls.VersionTLS12, maxVersion: tls.VersionTLS13}
	clientDefaults = defaults{minVersion: tls.VersionTLS12, maxVersion: tls.VersionTLS13}
)

// defaultCipherSuites is Envoy's default TLS 1.2 list for both sides in
// non-FIPS builds (envoy: TlsParameters.cipher_suites). It drops the CBC and
// RSA key exchange suites that crypto/tls still enables by default.
var defaultCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
}

// cipherSuites maps the BoringSSL names Envoy accepts to crypto/tls IDs.
// Only suites both libraries implement are listed; PSK suites are not.
var cipherSuites = map[string]uint16{
	"ECDHE-ECDSA-AES128-GCM-SHA256": tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-RSA-AES128-GCM-SHA256":   tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-ECDSA-AES256-GCM-SHA384": tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-RSA-AES256-GCM-SHA384":   tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-ECDSA-CHACHA20-POLY1305": tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-RSA-CHACHA20-POLY1305":   tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-ECDSA-AES128-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	"ECDHE-RSA-AES128-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	"ECDHE-ECDSA-AES256-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	"ECDHE-RSA-AES256-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	"AES128-GCM-SHA256":             tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	"AES256-GCM-SHA384":             tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	"AES128-SHA":                    tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	"AES256-SHA":                    tls.TLS_RSA_WITH_AES_256_CBC_SHA,
	"DES-CBC3-SHA":                  tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA,
}

// curves maps the BoringSSL group names (and their OpenSSL aliases) to
// crypto/tls IDs.
var curves = map[string]tls.CurveID{
	"X25519":         tls.X25519,
	"P-256":          tls.CurveP256,
	"prime256v1":     tls.CurveP256,
	"P-384":          tls.CurveP384,
	"secp384r1":      tls.CurveP384,
	"P-521":          tls.CurveP521,
	"secp521r1":      tls.CurveP521,
	"X25519MLKEM768": tls.X25519MLKEM768,
}

var versions = map[tlsv3.TlsParameters_TlsProtocol]uint16{
	tlsv3.TlsParameters_TLSv1_0: tls.VersionTLS10,
	tlsv3.TlsParameters_TLSv1_1: tls.VersionTLS11,
	tlsv3.TlsParameters_TLSv1_2: tls.VersionTLS12,
	tlsv3.TlsParameters_TLSv1_3: tls.VersionTLS13,
}

// applyParams sets versions, cipher suites and curves from p (which may be
// nil). Unset ecdh_curves keep crypto/tls's default groups, which lead with
// the X25519MLKEM768 hybrid that Envoy's default X25519:P-256 lacks.
func applyParams(cfg *tls.Config, p *tlsv3.TlsParameters, path string, d defaults) error {
	var err error
	if cfg.MinVersion, err = version(p.GetTlsMinimumProtocolVersion(), d.minVersion); err != nil {
		return fmt.Errorf("%s.tls_minimum_protocol_version: %w", path, err)
	}
	if cfg.MaxVersion, err = version(p.GetTlsMaximumProtocolVersion(), d.maxVersion); err != nil {
		return fmt.Errorf("%s.tls_maximum_protocol_version: %w", path, err)
	}
	if cfg.MinVersion > cfg.MaxVersion {
		return fmt.Errorf("%s: tls_minimum_protocol_version %s is above tls_maximum_protocol_version %s",
			path, tls.VersionName(cfg.MinVersion), tls.VersionName(cfg.MaxVersion))
	}
	cfg.CipherSuites = slices.Clone(defaultCipherSuites)
	if names := p.GetCipherSuites(); len(names) > 0 {
		if cfg.CipherSuites, err = lookupAll(names, cipherSuites); err != nil {
			return fmt.Errorf("%s.cipher_suites%w", path, err)
		}
	}
	if names := p.GetEcdhCurves(); len(names) > 0 {
		if cfg.CurvePreferences, err = lookupAll(names, curves); err != nil {
			return fmt.Errorf("%s.ecdh_curves%w", path, err)
		}
	}
	return nil
}

func version(v tlsv3.TlsParameters_TlsProtocol, def uint16) (uint16, error) {
	if v == tlsv3.TlsParameters_TLS_AUTO {
		return def, nil
	}
	if tv, ok := versions[v]; ok {
		return tv, nil
	}
	return 0, fmt.Errorf("unknown version %d", v)
}

// lookupAll maps BoringSSL list entries to IDs, de-duplicated in order. Envoy
// joins the repeated field with ':' into one BoringSSL list, so an entry may
// itself hold ':'-separated names or "[a|b]" equal-preference groups;
// crypto/tls has no equal preference, so groups are flattened. Its error
// starts with "[i]: " for the caller to prefix with the field name.
func lookupAll[T comparable](entries []string, known map[string]T) ([]T, error) {
	var out []T
	for i, e := range entries {
		names := strings.FieldsFunc(e, func(r rune) bool { return r == ':' || r == '[' || r == ']' || r == '|' })
		if len(names) == 0 {
			return nil, fmt.Errorf("[%d]: empty", i)
		}
		for _, n := range names {
			id, ok := known[n]
			if !ok {
				return nil, fmt.Errorf("[%d]: unknown or unsupported name %q", i, n)
			}
			if !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	return out, nil
}
