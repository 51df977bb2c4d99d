package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority for tests. Create one with NewCA or
// (*CA).NewIntermediate.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey

	pem   []byte // this CA's certificate only
	chain []byte // this CA and its parents up to, not including, the root; appended to leaves
	file  string
}

// NewCA returns a self-signed root CA whose subject common name is name,
// valid from an hour ago for a day.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := caTemplate(t, name)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("certs: create CA %q: %v", name, err)
	}
	return newCA(t, der, key, true, nil)
}

// NewIntermediate returns a CA named name signed by ca. Leaves it issues carry
// the intermediate chain in Leaf.CertPEM (not the root), as servers send it.
func (ca *CA) NewIntermediate(t testing.TB, name string) *CA {
	t.Helper()
	key := newKey(t)
	der, err := x509.CreateCertificate(rand.Reader, caTemplate(t, name), ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatalf("certs: create intermediate %q: %v", name, err)
	}
	return newCA(t, der, key, false, ca.chain)
}

func newCA(t testing.TB, der []byte, key *ecdsa.PrivateKey, root bool, parentChain []byte) *CA {
	t.Helper()
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("certs: parse CA: %v", err)
	}
	ca := &CA{Cert: cert, Key: key, pem: encode("CERTIFICATE", der)}
	if !root {
		ca.chain = append(append([]byte(nil), ca.pem...), parentChain...)
	}
	ca.file = write(t, t.TempDir(), "ca.pem", ca.pem)
	return ca
}

// PEM returns the CA's own certificate in PEM form.
func (ca *CA) PEM() []byte { return ca.pem }

// File returns the path of a file holding PEM().
func (ca *CA) File() string { return ca.file }

// Pool returns a pool holding only this CA's certificate. For an intermediate
// that makes it the trust anchor (a partial chain).
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Usage selects a leaf's extended key usages.
type Usage int

const (
	// ServerAndClient sets both id-kp-serverAuth and id-kp-clientAuth.
	ServerAndClient Usage = iota
	// Server sets only id-kp-serverAuth.
	Server
	// Client sets only id-kp-clientAuth.
	Client
)

// LeafOptions describe a leaf certificate. The zero value issues a leaf with
// common name "leaf", no SANs, both usages, valid from an hour ago for a day.
type LeafOptions struct {
	// CommonName is the subject CN; empty means "leaf".
	CommonName string
	// DNSNames, URIs, IPs and Emails are the SANs. URIs and IPs are parsed
	// and fail the test if invalid.
	DNSNames []string
	URIs     []string
	IPs      []string
	Emails   []string
	// Usage is the extended key usage; zero means ServerAndClient.
	Usage Usage
	// NotBefore and NotAfter bound validity; zero means an hour ago and a
	// day from now.
	NotBefore, NotAfter time.Time
}

// Leaf is an issued certificate with its key.
type Leaf struct {
	// CertPEM holds the leaf followed by any intermediates, KeyPEM the
	// PKCS #8 private key.
	CertPEM, KeyPEM []byte
	// CertFile and KeyFile are files holding CertPEM and KeyPEM.
	CertFile, KeyFile string
	// TLS is the pair ready for tls.Config.Certificates, Leaf set.
	TLS tls.Certificate
}

// Issue signs a leaf described by o.
func (ca *CA) Issue(t testing.TB, o LeafOptions) *Leaf {
	t.Helper()
	key := newKey(t)
	cn := o.CommonName
	if cn == "" {
		cn = "leaf"
	}
	tmpl := &x509.Certificate{
		SerialNumber:   serial(t),
		Subject:        pkix.Name{CommonName: cn},
		NotBefore:      o.NotBefore,
		NotAfter:       o.NotAfter,
		KeyUsage:       x509.KeyUsageDigitalSignature,
		DNSNames:       o.DNSNames,
		EmailAddresses: o.Emails,
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	}
	switch o.Usage {
	case Server:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	case Client:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	default:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	for _, s := range o.URIs {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatalf("certs: URI SAN %q: %v", s, err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	for _, s := range o.IPs {
		ip := net.ParseIP(s)
		if ip == nil {
			t.Fatalf("certs: IP SAN %q: not an IP address", s)
		}
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatalf("certs: issue %q: %v", cn, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("certs: marshal key: %v", err)
	}
	l := &Leaf{
		CertPEM: append(encode("CERTIFICATE", der), ca.chain...),
		KeyPEM:  encode("PRIVATE KEY", keyDER),
	}
	dir := t.TempDir()
	l.CertFile = write(t, dir, "cert.pem", l.CertPEM)
	l.KeyFile = write(t, dir, "key.pem", l.KeyPEM)
	l.TLS, err = tls.X509KeyPair(l.CertPEM, l.KeyPEM)
	if err != nil {
		t.Fatalf("certs: key pair: %v", err)
	}
	return l
}

func caTemplate(t testing.TB, name string) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("certs: generate key: %v", err)
	}
	return k
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		t.Fatalf("certs: serial: %v", err)
	}
	return s
}

func encode(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func write(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatalf("certs: %v", err)
	}
	return p
}
