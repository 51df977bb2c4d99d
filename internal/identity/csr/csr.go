// Package csr is the proxy's half of certificate issuance: it makes the
// private key, which never leaves the proxy, and the certificate signing
// request the control plane's CA accepts (exactly one URI SAN, the
// proxy's SPIFFE ID, and nothing else; see ca.CheckCSR).
//
// The functions are safe for concurrent use.
package csr

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// NewKey returns a fresh ECDSA P-256 key for one certificate. Make a new
// key at every renewal, so a leaked key dies with its certificate.
func NewKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("csr: generate key: %w", err)
	}
	return k, nil
}

// Build returns the DER of a CSR signed by key whose only content is one
// URI SAN, id; the subject is empty.
func Build(key crypto.Signer, id spiffeid.ID) ([]byte, error) {
	if key == nil {
		return nil, errors.New("csr: key: missing")
	}
	if id.IsZero() {
		return nil, errors.New("csr: identity: missing")
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{id.URL()}}, key)
	if err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	return der, nil
}

// TLSCertificate assembles what the CA returned (leaf first, then
// intermediates, as DER) and the key into a tls.Certificate with Leaf set.
// It checks that the leaf carries key's public key and exactly the
// expected identity.
func TLSCertificate(key crypto.Signer, id spiffeid.ID, chainDER [][]byte) (*tls.Certificate, error) {
	if len(chainDER) == 0 {
		return nil, errors.New("csr: certificate chain: empty")
	}
	leaf, err := x509.ParseCertificate(chainDER[0])
	if err != nil {
		return nil, fmt.Errorf("csr: certificate chain: leaf: %w", err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return nil, errors.New("csr: the issued leaf does not carry this proxy's public key")
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != id.String() {
		return nil, fmt.Errorf("csr: the issued leaf names %v, want exactly %q", leaf.URIs, id)
	}
	return &tls.Certificate{Certificate: chainDER, PrivateKey: key, Leaf: leaf}, nil
}
