package identity

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/trellis-mesh/trellis/internal/identity/ca"
	"github.com/trellis-mesh/trellis/internal/identity/csr"
	"github.com/trellis-mesh/trellis/internal/identity/token"
)

type testMesh struct {
	*Mesh
	revoked map[string]bool
}

// newMesh makes a mesh's CA and token issuer, as the control plane does on
// first use.
func newMesh(t *testing.T, name string) *testMesh {
	t.Helper()
	c, err := ca.Generate(spiffeid.RequireTrustDomainFromString(name+".trellis.local"), ca.GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	key, err := token.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	m := &testMesh{revoked: map[string]bool{}}
	tokens, err := token.New(token.Options{Mesh: name, Key: key, Revoked: func(id string) bool { return m.revoked[id] }})
	if err != nil {
		t.Fatal(err)
	}
	m.Mesh = &Mesh{Tokens: tokens, CA: ca.NewState(c)}
	return m
}

func newAuthority(t *testing.T, meshes map[string]*testMesh, onIssue func(*Issued)) *Authority {
	t.Helper()
	a, err := New(Options{
		Mesh: func(_ context.Context, name string) (*Mesh, error) {
			if name == "broken" {
				return nil, errors.New("store unavailable")
			}
			m, ok := meshes[name]
			if !ok {
				return nil, fmt.Errorf("mesh %q: %w", name, ErrUnknownMesh)
			}
			return m.Mesh, nil
		},
		OnIssue: onIssue,
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func csrFor(t *testing.T, id string) []byte {
	t.Helper()
	k, err := csr.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	der, err := csr.Build(k, spiffeid.RequireFromString(id))
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func issueToken(t *testing.T, m *testMesh, mesh, service string) string {
	t.Helper()
	tok, _, err := m.Tokens.Issue(mesh, service, 0)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestIssue(t *testing.T) {
	def := newMesh(t, "default")
	var issued []*Issued
	a := newAuthority(t, map[string]*testMesh{"default": def}, func(i *Issued) { issued = append(issued, i) })
	tok := issueToken(t, def, "default", "web")
	out, err := a.Issue(t.Context(), tok, csrFor(t, "spiffe://default.trellis.local/default/web"))
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := x509svid.Verify(out.Chain, out.Bundle.X509())
	if err != nil {
		t.Fatal(err)
	}
	if id.String() != "spiffe://default.trellis.local/default/web" || out.ID != id || out.Token.Service != "web" || out.Phase != ca.PhaseStable {
		t.Fatalf("issued %v (phase %s, token %+v)", id, out.Phase, out.Token)
	}
	if len(issued) != 1 || issued[0] != out {
		t.Fatalf("OnIssue saw %d issuances", len(issued))
	}
}

func TestIssueRefuses(t *testing.T) {
	def, prod := newMesh(t, "default"), newMesh(t, "prod")
	a := newAuthority(t, map[string]*testMesh{"default": def, "prod": prod}, nil)
	webTok := issueToken(t, def, "default", "web")
	webCSR := csrFor(t, "spiffe://default.trellis.local/default/web")

	// A token whose claims say mesh "default" signed by a key that is not
	// default's.
	rogueKey, _ := token.GenerateKey()
	rogue, _ := token.New(token.Options{Mesh: "default", Key: rogueKey})
	rogueTok, _, _ := rogue.Issue("default", "web", 0)
	revokedTok, revokedClaims, _ := def.Tokens.Issue("default", "web", 0)
	def.revoked[revokedClaims.ID] = true
	noMeshKey, _ := token.GenerateKey()
	ghost, _ := token.New(token.Options{Mesh: "ghost", Key: noMeshKey})
	ghostTok, _, _ := ghost.Issue("ghost", "web", 0)
	broken, _ := token.New(token.Options{Mesh: "broken", Key: noMeshKey})
	brokenTok, _, _ := broken.Issue("broken", "web", 0)

	tests := []struct {
		name   string
		tok    string
		csr    []byte
		is     []error
		isNot  error
		substr string
	}{
		{"token for web, CSR for api", webTok, csrFor(t, "spiffe://default.trellis.local/default/api"), []error{ca.ErrIdentityMismatch, ca.ErrCSR}, ErrNotAuthenticated,
			`csr: URI SAN "spiffe://default.trellis.local/default/api" does not match the granted identity "spiffe://default.trellis.local/default/web"`},
		{"token of another mesh", issueToken(t, prod, "prod", "web"), webCSR, []error{ca.ErrIdentityMismatch}, nil, "granted identity \"spiffe://prod.trellis.local/prod/web\""},
		{"rogue key", rogueTok, webCSR, []error{ErrNotAuthenticated, token.ErrInvalidToken}, ca.ErrCSR, "signed by key"},
		{"revoked", revokedTok, webCSR, []error{ErrNotAuthenticated, token.ErrRevoked}, nil, "revoked"},
		{"unknown mesh", ghostTok, webCSR, []error{ErrNotAuthenticated}, nil, `mesh "ghost", which does not exist`},
		{"no token", "", webCSR, []error{ErrNotAuthenticated}, nil, "no token"},
		{"garbage token", "a.b", webCSR, []error{ErrNotAuthenticated, token.ErrInvalidToken}, nil, "dot-separated"},
		{"garbage CSR", webTok, []byte{0x30, 0x00}, []error{ca.ErrCSR}, ca.ErrIdentityMismatch, "csr:"},
		{"oversized CSR", webTok, make([]byte, 17<<10), []error{ca.ErrCSR}, nil, "bytes, at most"},
		{"store failure", brokenTok, webCSR, nil, ErrNotAuthenticated, "store unavailable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.Issue(t.Context(), tc.tok, tc.csr)
			if err == nil || !strings.Contains(err.Error(), tc.substr) {
				t.Fatalf("err %v, want it to contain %q", err, tc.substr)
			}
			for _, want := range tc.is {
				if !errors.Is(err, want) {
					t.Errorf("err %v does not wrap %v", err, want)
				}
			}
			if tc.isNot != nil && errors.Is(err, tc.isNot) {
				t.Errorf("err %v wraps %v", err, tc.isNot)
			}
		})
	}
}

// During a rotation the Authority signs with the phase's signer and hands
// out the two-root bundle.
func TestIssueDuringRotation(t *testing.T) {
	def := newMesh(t, "default")
	next, err := ca.Generate(def.CA.Current().TrustDomain(), ca.GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := def.CA.Force(next)
	if err != nil {
		t.Fatal(err)
	}
	def.CA = s
	a := newAuthority(t, map[string]*testMesh{"default": def}, nil)
	out, err := a.Issue(t.Context(), issueToken(t, def, "default", "web"), csrFor(t, "spiffe://default.trellis.local/default/web"))
	if err != nil {
		t.Fatal(err)
	}
	if out.Phase != ca.PhaseSignWithNew || len(out.Bundle.Roots()) != 2 {
		t.Fatalf("phase %s, %d roots", out.Phase, len(out.Bundle.Roots()))
	}
	if err := out.Chain[0].CheckSignatureFrom(next.Certificate()); err != nil {
		t.Fatalf("leaf not signed by the new CA: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(def.CA.Current().Root())
	if _, err := out.Chain[0].Verify(x509.VerifyOptions{Roots: pool}); err == nil {
		t.Fatal("a leaf of the new CA verifies under the old root alone")
	}
}
