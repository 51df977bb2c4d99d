package ca

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"slices"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Bundle is the set of roots a mesh trusts: one, or two during a CA
// rotation. It is immutable.
type Bundle struct {
	td    spiffeid.TrustDomain
	roots []*x509.Certificate
}

// NewBundle returns the bundle of roots for td, dropping duplicates (equal
// DER) and keeping the first occurrence's order.
func NewBundle(td spiffeid.TrustDomain, roots ...*x509.Certificate) *Bundle {
	b := &Bundle{td: td}
	for _, r := range roots {
		if !slices.ContainsFunc(b.roots, func(x *x509.Certificate) bool { return bytes.Equal(x.Raw, r.Raw) }) {
			b.roots = append(b.roots, r)
		}
	}
	return b
}

// TrustDomain returns the trust domain the roots vouch for.
func (b *Bundle) TrustDomain() spiffeid.TrustDomain { return b.td }

// Roots returns a copy of the roots; the certificates must not be modified.
func (b *Bundle) Roots() []*x509.Certificate { return slices.Clone(b.roots) }

// Contains reports whether cert is one of the roots.
func (b *Bundle) Contains(cert *x509.Certificate) bool {
	return slices.ContainsFunc(b.roots, func(x *x509.Certificate) bool { return bytes.Equal(x.Raw, cert.Raw) })
}

// PEM returns the roots as concatenated CERTIFICATE blocks, the form SDS
// validation contexts and files carry.
func (b *Bundle) PEM() []byte {
	var buf bytes.Buffer
	for _, r := range b.roots {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: r.Raw}) // writes to a bytes.Buffer cannot fail
	}
	return buf.Bytes()
}

// X509 returns the roots as a go-spiffe bundle, for x509svid.Verify and
// spiffetls.
func (b *Bundle) X509() *x509bundle.Bundle { return x509bundle.FromX509Authorities(b.td, b.roots) }

// Pool returns the roots as a certificate pool.
func (b *Bundle) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	for _, r := range b.roots {
		p.AddCert(r)
	}
	return p
}

// Version identifies the set of roots, independent of their order: the
// first 16 hex digits of a SHA-256 over the sorted DER. Use it as the SDS
// secret's version and to tell whether a proxy has acknowledged a bundle.
func (b *Bundle) Version() string {
	raws := make([][]byte, len(b.roots))
	for i, r := range b.roots {
		raws[i] = r.Raw
	}
	slices.SortFunc(raws, bytes.Compare)
	h := sha256.New()
	for _, r := range raws {
		h.Write(r)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}
