package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Defaults of Options and GenerateOptions.
const (
	DefaultLeafTTL    = 24 * time.Hour
	DefaultClockSkew  = time.Minute
	DefaultValidity   = 10 * 365 * 24 * time.Hour
	probeServiceLabel = "trellis-ca-probe"
)

// Options tune how a CA issues leaves. The zero value is the defaults.
type Options struct {
	// LeafTTL is the lifetime of a leaf when Sign is passed ttl 0.
	// Zero means DefaultLeafTTL (24h).
	LeafTTL time.Duration
	// ClockSkew backdates a leaf's NotBefore so a peer whose clock is a
	// little behind accepts it. Zero means DefaultClockSkew (1 minute);
	// negative is an error.
	ClockSkew time.Duration
}

func (o Options) withDefaults() (Options, error) {
	if o.LeafTTL < 0 {
		return o, fmt.Errorf("ca: options: leaf TTL %v: must not be negative", o.LeafTTL)
	}
	if o.ClockSkew < 0 {
		return o, fmt.Errorf("ca: options: clock skew %v: must not be negative", o.ClockSkew)
	}
	if o.LeafTTL == 0 {
		o.LeafTTL = DefaultLeafTTL
	}
	if o.ClockSkew == 0 {
		o.ClockSkew = DefaultClockSkew
	}
	return o, nil
}

// CA signs leaf certificates for one trust domain with one key. It is
// immutable and safe for concurrent use.
type CA struct {
	td    spiffeid.TrustDomain
	chain []*x509.Certificate // [0] holds the signing key; the last is the trust anchor
	key   crypto.Signer
	opts  Options
	// notBefore and notAfter bound the chain's common validity.
	notBefore, notAfter time.Time
}

// GenerateOptions configure Generate. The zero value is the defaults.
type GenerateOptions struct {
	Options
	// Validity is the root's lifetime. Zero means DefaultValidity (10
	// years).
	Validity time.Duration
}

// Generate creates a self-signed ECDSA P-256 root for trustDomain, valid
// from now (less the clock skew) for opts.Validity. The root is a CA with
// path length 0 (it signs leaves directly) and carries a critical name
// constraint permitting only URIs whose host is the trust domain
// (RFC 5280 §4.2.1.10; Go matches a URI constraint against the URI's host,
// which for a SPIFFE ID is the trust domain).
func Generate(trustDomain spiffeid.TrustDomain, opts GenerateOptions) (*CA, error) {
	if trustDomain.IsZero() {
		return nil, errors.New("ca: trust domain: must not be empty")
	}
	if opts.Validity < 0 {
		return nil, fmt.Errorf("ca: validity %v: must not be negative", opts.Validity)
	}
	if opts.Validity == 0 {
		opts.Validity = DefaultValidity
	}
	o, err := opts.Options.withDefaults()
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ca: generate key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:                serial,
		Subject:                     pkix.Name{Organization: []string{"Trellis"}, CommonName: "Trellis root CA " + trustDomain.Name()},
		NotBefore:                   now.Add(-o.ClockSkew),
		NotAfter:                    now.Add(opts.Validity),
		IsCA:                        true,
		BasicConstraintsValid:       true,
		MaxPathLen:                  0,
		MaxPathLenZero:              true,
		KeyUsage:                    x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		PermittedURIDomains:         []string{trustDomain.Name()},
		PermittedDNSDomainsCritical: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("ca: create root: %w", err)
	}
	root, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: parse root: %w", err)
	}
	return New(trustDomain, []*x509.Certificate{root}, key, o)
}

// New returns a CA for trustDomain that signs with key, whose certificate
// is chain[0]. chain runs from the signing certificate up to the trust
// anchor: a lone self-signed root, or an intermediate followed by its
// issuers (ideally ending with the root). The last certificate is the one
// proxies trust; an intermediate without its root becomes the anchor
// itself. New checks that the key matches chain[0], that each certificate
// is a CA signed by the next, that none is expired or not yet valid, and
// that a leaf for the trust domain verifies through the chain (catching
// name constraints, path lengths and extended key usages that would make
// every issued leaf useless).
func New(trustDomain spiffeid.TrustDomain, chain []*x509.Certificate, key crypto.Signer, opts Options) (*CA, error) {
	c, err := build(trustDomain, chain, key, opts)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	for i, cert := range chain {
		if now.After(cert.NotAfter) {
			return nil, fmt.Errorf("ca: chain[%d] %q: expired at %s", i, cert.Subject, cert.NotAfter.UTC().Format(time.RFC3339))
		}
		if now.Before(cert.NotBefore) {
			return nil, fmt.Errorf("ca: chain[%d] %q: not valid before %s", i, cert.Subject, cert.NotBefore.UTC().Format(time.RFC3339))
		}
	}
	if err := c.probe(); err != nil {
		return nil, err
	}
	return c, nil
}

// build validates everything but time, so a stored CA that has since
// expired can still be loaded (and rotated away from).
func build(td spiffeid.TrustDomain, chain []*x509.Certificate, key crypto.Signer, opts Options) (*CA, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	switch {
	case td.IsZero():
		return nil, errors.New("ca: trust domain: must not be empty")
	case len(chain) == 0:
		return nil, errors.New("ca: chain: no certificate")
	case key == nil:
		return nil, errors.New("ca: key: missing")
	}
	if err := checkKeyType(key.Public()); err != nil {
		return nil, fmt.Errorf("ca: key: %w", err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(chain[0].PublicKey) {
		return nil, fmt.Errorf("ca: key does not match the public key of chain[0] %q", chain[0].Subject)
	}
	c := &CA{td: td, chain: chain, key: key, opts: o, notBefore: chain[0].NotBefore, notAfter: chain[0].NotAfter}
	for i, cert := range chain {
		if !cert.BasicConstraintsValid || !cert.IsCA {
			return nil, fmt.Errorf("ca: chain[%d] %q: not a CA certificate (basicConstraints CA:true missing)", i, cert.Subject)
		}
		if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
			return nil, fmt.Errorf("ca: chain[%d] %q: key usage lacks certSign", i, cert.Subject)
		}
		if i+1 < len(chain) {
			if err := cert.CheckSignatureFrom(chain[i+1]); err != nil {
				return nil, fmt.Errorf("ca: chain[%d] %q is not signed by chain[%d] %q: %w", i, cert.Subject, i+1, chain[i+1].Subject, err)
			}
		}
		if cert.NotBefore.After(c.notBefore) {
			c.notBefore = cert.NotBefore
		}
		if cert.NotAfter.Before(c.notAfter) {
			c.notAfter = cert.NotAfter
		}
	}
	return c, nil
}

// probe issues a throwaway leaf and verifies it through the chain for both
// server and client use.
func (c *CA) probe() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("ca: probe key: %w", err)
	}
	id, err := spiffeid.FromSegments(c.td, probeServiceLabel, "probe")
	if err != nil {
		return fmt.Errorf("ca: probe identity: %w", err)
	}
	chain, err := c.issue(key.Public(), id, time.Minute)
	if err != nil {
		return fmt.Errorf("ca: probe leaf: %w", err)
	}
	if _, _, err := x509svid.Verify(chain, c.Bundle().X509()); err != nil {
		return fmt.Errorf("ca: a leaf for trust domain %q does not verify through the chain: %w", c.td, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c.Root())
	inter := x509.NewCertPool()
	for _, cert := range chain[1:] {
		inter.AddCert(cert)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := chain[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			return fmt.Errorf("ca: the chain does not allow leaves for %s: %w", extKeyUsageName[usage], err)
		}
	}
	return nil
}

var extKeyUsageName = map[x509.ExtKeyUsage]string{x509.ExtKeyUsageServerAuth: "serverAuth", x509.ExtKeyUsageClientAuth: "clientAuth"}

// TrustDomain returns the trust domain c issues identities in.
func (c *CA) TrustDomain() spiffeid.TrustDomain { return c.td }

// Certificate returns the certificate whose key signs leaves (chain[0]).
func (c *CA) Certificate() *x509.Certificate { return c.chain[0] }

// Chain returns the CA's chain, signing certificate first and trust anchor
// last. The slice is a copy; the certificates must not be modified.
func (c *CA) Chain() []*x509.Certificate { return append([]*x509.Certificate(nil), c.chain...) }

// Root returns the trust anchor: the last certificate of the chain.
func (c *CA) Root() *x509.Certificate { return c.chain[len(c.chain)-1] }

// NotAfter returns the earliest expiry in the chain; no leaf outlives it.
func (c *CA) NotAfter() time.Time { return c.notAfter }

// Bundle returns the trust bundle of this CA alone: its anchor.
func (c *CA) Bundle() *Bundle { return NewBundle(c.td, c.Root()) }

// Options returns the issuing options in effect (defaults filled in).
func (c *CA) Options() Options { return c.opts }

// Parse builds a CA from PEM: chainPEM holds the CA certificate first,
// then its issuers (see New); keyPEM holds the CA certificate's private key
// as PKCS#8 ("PRIVATE KEY"), SEC 1 ("EC PRIVATE KEY") or PKCS#1
// ("RSA PRIVATE KEY"). This is how an external PKI is plugged in: issue an
// intermediate for Trellis from it and pass the intermediate, its issuers
// and its key.
func Parse(trustDomain spiffeid.TrustDomain, chainPEM, keyPEM []byte, opts Options) (*CA, error) {
	chain, key, err := parsePEM(chainPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return New(trustDomain, chain, key, opts)
}

// LoadFiles is Parse reading the chain and key from files.
func LoadFiles(trustDomain spiffeid.TrustDomain, chainFile, keyFile string, opts Options) (*CA, error) {
	chainPEM, err := os.ReadFile(chainFile)
	if err != nil {
		return nil, fmt.Errorf("ca: certificate chain: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("ca: key: %w", err)
	}
	return Parse(trustDomain, chainPEM, keyPEM, opts)
}

func parsePEM(chainPEM, keyPEM []byte) ([]*x509.Certificate, crypto.Signer, error) {
	var chain []*x509.Certificate
	for rest := chainPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, nil, fmt.Errorf("ca: certificate chain: PEM block %d is %q, want CERTIFICATE", len(chain), b.Type)
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("ca: certificate chain: block %d: %w", len(chain), err)
		}
		chain = append(chain, cert)
	}
	if len(chain) == 0 {
		return nil, nil, errors.New("ca: certificate chain: no CERTIFICATE PEM block")
	}
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		return nil, nil, errors.New("ca: key: no PEM block")
	}
	var (
		k   any
		err error
	)
	switch b.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		return nil, nil, fmt.Errorf("ca: key: PEM block %q, want PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY", b.Type)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("ca: key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("ca: key: %T cannot sign", k)
	}
	return chain, signer, nil
}

// checkKeyType accepts ECDSA P-256 and P-384, RSA of 2048 to 8192 bits, and
// Ed25519, for CA keys and CSR keys alike.
func checkKeyType(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("ECDSA curve %s: want P-256 or P-384", k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < 2048 || n > 8192 {
			return fmt.Errorf("RSA key of %d bits: want 2048 to 8192", n)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("public key type %T: want ECDSA, RSA or Ed25519", pub)
	}
	return nil
}

// newSerial returns a random positive 128-bit serial (RFC 5280 §4.1.2.2
// allows up to 20 octets; CA/B Forum asks for at least 64 random bits).
func newSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("ca: serial: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}
