package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

func mustID(t testing.TB, s string) spiffeid.ID {
	t.Helper()
	id, err := spiffeid.FromString(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func generate(t testing.TB, opts GenerateOptions) *CA {
	t.Helper()
	c, err := Generate(td, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// makeCSR builds a CSR from tmpl signed by key and parses it back.
func makeCSR(t testing.TB, key crypto.Signer, tmpl *x509.CertificateRequest) *x509.CertificateRequest {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func uriCSR(t testing.TB, key crypto.Signer, ids ...string) *x509.CertificateRequest {
	t.Helper()
	var uris []*url.URL
	for _, s := range ids {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		uris = append(uris, u)
	}
	return makeCSR(t, key, &x509.CertificateRequest{URIs: uris})
}

// certOpts describe a hand-made CA certificate for external-PKI tests.
type certOpts struct {
	cn         string
	maxPathLen int
	notBefore  time.Time
	notAfter   time.Time
	isCA       bool
	keyUsage   x509.KeyUsage
	extKey     []x509.ExtKeyUsage
	uriDomains []string
}

// makeCert signs a certificate for key with parent/parentKey (self-signed
// when parent is nil).
func makeCert(t testing.TB, key crypto.Signer, parent *x509.Certificate, parentKey crypto.Signer, o certOpts) *x509.Certificate {
	t.Helper()
	if o.notBefore.IsZero() {
		o.notBefore = time.Now().Add(-time.Hour)
	}
	if o.notAfter.IsZero() {
		o.notAfter = time.Now().Add(365 * 24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: o.cn},
		NotBefore:             o.notBefore,
		NotAfter:              o.notAfter,
		IsCA:                  o.isCA,
		BasicConstraintsValid: true,
		MaxPathLen:            o.maxPathLen,
		MaxPathLenZero:        o.isCA && o.maxPathLen == 0,
		KeyUsage:              o.keyUsage,
		ExtKeyUsage:           o.extKey,
		PermittedURIDomains:   o.uriDomains,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
