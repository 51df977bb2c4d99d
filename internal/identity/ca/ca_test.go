package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

func TestGenerate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := generate(t, GenerateOptions{})
		root := c.Root()
		if !root.IsCA || !root.BasicConstraintsValid || root.MaxPathLen != 0 || !root.MaxPathLenZero {
			t.Errorf("root basic constraints: IsCA=%v MaxPathLen=%d zero=%v", root.IsCA, root.MaxPathLen, root.MaxPathLenZero)
		}
		if k, ok := root.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
			t.Errorf("root key %T, want ECDSA P-256", root.PublicKey)
		}
		if got := root.PermittedURIDomains; len(got) != 1 || got[0] != "example.org" || !root.PermittedDNSDomainsCritical {
			t.Errorf("name constraints %v critical=%v, want [example.org] critical", got, root.PermittedDNSDomainsCritical)
		}
		now := time.Now()
		if want := now.Add(DefaultValidity); !root.NotAfter.Equal(want) {
			t.Errorf("NotAfter %v, want %v", root.NotAfter, want)
		}
		if want := now.Add(-DefaultClockSkew); !root.NotBefore.Equal(want) {
			t.Errorf("NotBefore %v, want %v", root.NotBefore, want)
		}
		if len(c.Chain()) != 1 || c.Certificate() != root {
			t.Errorf("a generated CA's chain is its root alone")
		}
	})
}

// The root's name constraint stops its own key from minting identities of
// another trust domain that verify through it.
func TestGeneratedRootConstrainsURIs(t *testing.T) {
	c := generate(t, GenerateOptions{})
	leafKey := newKey(t)
	evil, _ := url.Parse("spiffe://evil.example/m/s")
	tmpl := &x509.Certificate{SerialNumber: mustSerial(t), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), URIs: []*url.URL{evil}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.Root(), leafKey.Public(), c.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	_, err = leaf.Verify(x509.VerifyOptions{Roots: c.Bundle().Pool()})
	if err == nil || !strings.Contains(err.Error(), "constraint") {
		t.Fatalf("leaf for another trust domain verified (err %v), want a name-constraint error", err)
	}
}

func mustSerial(t *testing.T) *big.Int {
	t.Helper()
	s, err := newSerial()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSignIssuesSVID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := generate(t, GenerateOptions{})
		id := mustID(t, "spiffe://example.org/default/web")
		key := newKey(t)
		chain, err := c.Sign(uriCSR(t, key, id.String()), id, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(chain) != 1 {
			t.Fatalf("chain of %d certificates, want the leaf alone under a root", len(chain))
		}
		leaf := chain[0]
		got, _, err := x509svid.Verify(chain, c.Bundle().X509())
		if err != nil {
			t.Fatalf("x509svid.Verify: %v", err)
		}
		if got != id {
			t.Errorf("verified ID %v, want %v", got, id)
		}
		now := time.Now()
		if !leaf.NotBefore.Equal(now.Add(-time.Minute)) || !leaf.NotAfter.Equal(now.Add(24*time.Hour)) {
			t.Errorf("validity %v..%v, want now-1m..now+24h", leaf.NotBefore, leaf.NotAfter)
		}
		if leaf.IsCA || leaf.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
			t.Errorf("IsCA=%v KeyUsage=%v", leaf.IsCA, leaf.KeyUsage)
		}
		if len(leaf.ExtKeyUsage) != 2 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || leaf.ExtKeyUsage[1] != x509.ExtKeyUsageClientAuth {
			t.Errorf("ExtKeyUsage %v, want serverAuth, clientAuth", leaf.ExtKeyUsage)
		}
		if len(leaf.Subject.Names) != 0 || len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 {
			t.Errorf("subject %q, DNS %v, IP %v, email %v: want all empty", leaf.Subject, leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses)
		}
		if !sanCritical(leaf) {
			t.Error("subjectAltName not critical with an empty subject (X.509-SVID §4)")
		}
		if !key.PublicKey.Equal(leaf.PublicKey) {
			t.Error("leaf does not carry the CSR's public key")
		}
		if leaf.SerialNumber.BitLen() > 128 || leaf.SerialNumber.Sign() <= 0 {
			t.Errorf("serial %v: want positive, at most 128 bits", leaf.SerialNumber)
		}
	})
}

func sanCritical(c *x509.Certificate) bool {
	for _, e := range c.Extensions {
		if e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 17}) {
			return e.Critical
		}
	}
	return false
}

func TestSignClampsToIssuer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := generate(t, GenerateOptions{Validity: 2 * time.Hour})
		id := mustID(t, "spiffe://example.org/default/web")
		chain, err := c.Sign(uriCSR(t, newKey(t), id.String()), id, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if !chain[0].NotAfter.Equal(c.Root().NotAfter) {
			t.Errorf("NotAfter %v, want the root's %v", chain[0].NotAfter, c.Root().NotAfter)
		}
		if chain[0].NotBefore.Before(c.Root().NotBefore) {
			t.Errorf("NotBefore %v before the root's %v", chain[0].NotBefore, c.Root().NotBefore)
		}
		time.Sleep(3 * time.Hour) // synctest: the fake clock moves past the root's expiry
		_, err = c.Sign(uriCSR(t, newKey(t), id.String()), id, 0)
		if err == nil || !strings.Contains(err.Error(), "issuer expired") {
			t.Fatalf("Sign after the root expired: %v, want issuer expired", err)
		}
	})
}

func TestSignRefusesOtherTrustDomain(t *testing.T) {
	c := generate(t, GenerateOptions{})
	id := mustID(t, "spiffe://other.org/default/web")
	_, err := c.Sign(uriCSR(t, newKey(t), id.String()), id, 0)
	if err == nil || !strings.Contains(err.Error(), `not in trust domain "example.org"`) {
		t.Fatalf("err %v, want not in trust domain", err)
	}
	if _, err := c.Sign(uriCSR(t, newKey(t), "spiffe://example.org/a/b"), mustID(t, "spiffe://example.org/a/b"), -time.Second); err == nil {
		t.Fatal("negative ttl accepted")
	}
}

func TestSerialsUniqueAndRandom(t *testing.T) {
	c := generate(t, GenerateOptions{})
	id := mustID(t, "spiffe://example.org/default/web")
	csr := uriCSR(t, newKey(t), id.String())
	seen := map[string]bool{}
	long := 0
	const n = 200
	for range n {
		chain, err := c.Sign(csr, id, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		s := chain[0].SerialNumber
		if seen[s.String()] {
			t.Fatalf("serial %v issued twice", s)
		}
		seen[s.String()] = true
		if s.BitLen() > 120 {
			long++
		}
	}
	// A uniform 128-bit serial has more than 120 bits with probability
	// 1-2^-8; 200 draws fall below 180 such only if the source is broken.
	if long < 180 {
		t.Errorf("%d of %d serials longer than 120 bits; serials are not uniformly random 128-bit", long, n)
	}
}

// externalPKI returns a root (path length 1) and an intermediate under it,
// as a user's PKI would issue for Trellis.
func externalPKI(t *testing.T, interOpts certOpts) (root, inter *x509.Certificate, interKey *ecdsa.PrivateKey) {
	rootKey := newKey(t)
	root = makeCert(t, rootKey, nil, nil, certOpts{cn: "corp root", isCA: true, maxPathLen: 1, keyUsage: x509.KeyUsageCertSign})
	interKey = newKey(t)
	interOpts.cn, interOpts.isCA = "trellis intermediate", true
	if interOpts.keyUsage == 0 {
		interOpts.keyUsage = x509.KeyUsageCertSign
	}
	inter = makeCert(t, interKey, root, rootKey, interOpts)
	return root, inter, interKey
}

func TestIntermediate(t *testing.T) {
	root, inter, key := externalPKI(t, certOpts{notAfter: time.Now().Add(time.Hour)})
	c, err := New(td, []*x509.Certificate{inter, root}, key, Options{})
	if err != nil {
		t.Fatal(err)
	}
	id := mustID(t, "spiffe://example.org/default/web")
	chain, err := c.Sign(uriCSR(t, newKey(t), id.String()), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 2 || chain[1] != inter {
		t.Fatalf("chain %d long, want leaf + intermediate", len(chain))
	}
	if c.Root() != root || !c.Bundle().Contains(root) {
		t.Error("the anchor is not the root")
	}
	if _, _, err := x509svid.Verify(chain, c.Bundle().X509()); err != nil {
		t.Fatalf("verify through the intermediate: %v", err)
	}
	if !chain[0].NotAfter.Equal(inter.NotAfter) {
		t.Errorf("NotAfter %v, want clamped to the intermediate's %v", chain[0].NotAfter, inter.NotAfter)
	}
}

func TestNewRejects(t *testing.T) {
	root, inter, interKey := externalPKI(t, certOpts{})
	otherKey := newKey(t)
	leafLike := makeCert(t, otherKey, nil, nil, certOpts{cn: "not a ca"})
	expired := makeCert(t, otherKey, nil, nil, certOpts{cn: "old", isCA: true, notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-time.Hour)})
	future := makeCert(t, otherKey, nil, nil, certOpts{cn: "future", isCA: true, notBefore: time.Now().Add(time.Hour)})
	_, serverOnly, serverOnlyKey := externalPKI(t, certOpts{extKey: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	_, otherTD, otherTDKey := externalPKI(t, certOpts{uriDomains: []string{"other.org"}})
	noSign := makeCert(t, otherKey, nil, nil, certOpts{cn: "nosign", isCA: true, keyUsage: x509.KeyUsageDigitalSignature})
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weak := makeCert(t, rsaKey, nil, nil, certOpts{cn: "weak", isCA: true})
	tests := []struct {
		name  string
		chain []*x509.Certificate
		key   crypto.Signer
		want  string
	}{
		{"empty chain", nil, interKey, "chain: no certificate"},
		{"key mismatch", []*x509.Certificate{inter, root}, otherKey, "key does not match"},
		{"not a CA", []*x509.Certificate{leafLike}, otherKey, "not a CA certificate"},
		{"expired", []*x509.Certificate{expired}, otherKey, "expired at"},
		{"not yet valid", []*x509.Certificate{future}, otherKey, "not valid before"},
		{"broken chain", []*x509.Certificate{inter, leafLike}, interKey, "is not signed by chain[1]"},
		{"no certSign", []*x509.Certificate{noSign}, otherKey, "lacks certSign"},
		{"weak key", []*x509.Certificate{weak}, rsaKey, "RSA key of 1024 bits"},
		{"intermediate for servers only", []*x509.Certificate{serverOnly}, serverOnlyKey, "clientAuth"},
		{"name-constrained to another trust domain", []*x509.Certificate{otherTD}, otherTDKey, "does not verify through the chain"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(td, tc.chain, tc.key, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
