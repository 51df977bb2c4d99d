package csr

import (
	"crypto/x509"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/trellis-mesh/trellis/internal/identity/ca"
)

// The CSR Build makes passes the CA's strict check and yields a leaf that
// TLSCertificate accepts and go-spiffe verifies.
func TestBuildSignAssemble(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	id := spiffeid.RequireFromString("spiffe://example.org/default/web")
	authority, err := ca.Generate(td, ca.GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	der, err := Build(key, id)
	if err != nil {
		t.Fatal(err)
	}
	req, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	if len(req.Subject.Names) != 0 || len(req.Extensions) != 1 {
		t.Errorf("CSR subject %q, %d extensions: want empty subject, SAN only", req.Subject, len(req.Extensions))
	}
	chain, err := authority.Sign(req, id, 0)
	if err != nil {
		t.Fatalf("the CA rejects Build's CSR: %v", err)
	}
	raw := [][]byte{chain[0].Raw}
	cert, err := TLSCertificate(key, id, raw)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := x509svid.Verify([]*x509.Certificate{cert.Leaf}, authority.Bundle().X509()); err != nil || got != id {
		t.Fatalf("verify: %v, %v", got, err)
	}

	other, _ := NewKey()
	if _, err := TLSCertificate(other, id, raw); err == nil || !strings.Contains(err.Error(), "public key") {
		t.Errorf("leaf for another key accepted: %v", err)
	}
	if _, err := TLSCertificate(key, spiffeid.RequireFromString("spiffe://example.org/default/api"), raw); err == nil || !strings.Contains(err.Error(), "want exactly") {
		t.Errorf("leaf for another identity accepted: %v", err)
	}
	if _, err := Build(key, spiffeid.ID{}); err == nil {
		t.Error("Build with no identity accepted")
	}
}
