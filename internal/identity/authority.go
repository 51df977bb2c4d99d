package identity

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/trellis-mesh/trellis/internal/identity/ca"
	"github.com/trellis-mesh/trellis/internal/identity/spiffe"
	"github.com/trellis-mesh/trellis/internal/identity/token"
)

// Errors of Authority.Issue; test with errors.Is. The CSR service maps
// them to gRPC codes at its boundary:
//
//	ErrNotAuthenticated      → Unauthenticated
//	ca.ErrIdentityMismatch   → PermissionDenied (check before ca.ErrCSR)
//	ca.ErrCSR                → InvalidArgument
//	anything else            → Internal
var (
	// ErrNotAuthenticated: the token is missing, malformed, badly signed,
	// expired, revoked, or names a mesh that does not exist. It wraps the
	// token package's sentinel where there is one.
	ErrNotAuthenticated = errors.New("not authenticated")
	// ErrUnknownMesh is what Options.Mesh returns (wrapped) when no such
	// mesh exists; Issue turns it into ErrNotAuthenticated.
	ErrUnknownMesh = errors.New("unknown mesh")
)

// maxCSRLen bounds the CSR Issue parses; a P-256 CSR is about 300 bytes,
// an RSA-8192 one about 1.5 KiB.
const maxCSRLen = 16 << 10

// Mesh is what the Authority needs of one mesh.
type Mesh struct {
	// Tokens verifies the mesh's dataplane tokens.
	Tokens *token.Issuer
	// CA is the mesh's CA state; State.Signer() signs, State.Bundle() is
	// returned with every chain.
	CA *ca.State
}

// Options configure an Authority.
type Options struct {
	// Mesh returns the current identity material of the named mesh, or an
	// error wrapping ErrUnknownMesh. Required. It is called once per
	// Issue; the control plane answers from memory, kept in sync with its
	// store.
	Mesh func(ctx context.Context, name string) (*Mesh, error)
	// LeafTTL is the lifetime of issued leaves. Zero means the CA's
	// default (24h).
	LeafTTL time.Duration
	// OnIssue, if set, is called after each successful issuance (the
	// control plane records issued leaves to report ca.Progress).
	OnIssue func(*Issued)
	// Logger receives one Info record per issued certificate. Nil means
	// slog.Default().
	Logger *slog.Logger
}

// Authority issues certificates to proxies holding dataplane tokens.
type Authority struct {
	opts Options
	log  *slog.Logger
}

// Issued is the answer to one certificate request.
type Issued struct {
	// ID is the identity the token granted and the leaf carries.
	ID spiffeid.ID
	// Token are the verified token's claims.
	Token token.Claims
	// Chain is the leaf first, then intermediates (not the root). Send
	// each certificate's Raw.
	Chain []*x509.Certificate
	// Bundle is the mesh's trust bundle in the current rotation phase.
	Bundle *ca.Bundle
	// Phase is the mesh CA's rotation phase when the leaf was signed.
	Phase ca.Phase
}

// New returns an Authority.
func New(opts Options) (*Authority, error) {
	if opts.Mesh == nil {
		return nil, errors.New("identity: options: Mesh lookup is required")
	}
	if opts.LeafTTL < 0 {
		return nil, fmt.Errorf("identity: options: leaf TTL %v: must not be negative", opts.LeafTTL)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Authority{opts: opts, log: log.With("component", "identity")}, nil
}

// Authenticate verifies tok and returns the identity it grants and its
// claims. Errors wrap ErrNotAuthenticated (and the token package's
// ErrInvalidToken, ErrExpired or ErrRevoked where one applies).
func (a *Authority) Authenticate(ctx context.Context, tok string) (spiffeid.ID, token.Claims, error) {
	id, claims, _, err := a.authenticate(ctx, tok)
	return id, claims, err
}

func (a *Authority) authenticate(ctx context.Context, tok string) (spiffeid.ID, token.Claims, *Mesh, error) {
	if tok == "" {
		return spiffeid.ID{}, token.Claims{}, nil, fmt.Errorf("%w: no token", ErrNotAuthenticated)
	}
	name, err := token.MeshOf(tok)
	if err != nil {
		return spiffeid.ID{}, token.Claims{}, nil, fmt.Errorf("%w: %w", ErrNotAuthenticated, err)
	}
	m, err := a.opts.Mesh(ctx, name)
	if errors.Is(err, ErrUnknownMesh) {
		return spiffeid.ID{}, token.Claims{}, nil, fmt.Errorf("%w: token for mesh %q, which does not exist", ErrNotAuthenticated, name)
	}
	if err != nil {
		return spiffeid.ID{}, token.Claims{}, nil, fmt.Errorf("identity: mesh %q: %w", name, err)
	}
	claims, err := m.Tokens.Verify(tok)
	if err != nil {
		return spiffeid.ID{}, token.Claims{}, nil, fmt.Errorf("%w: %w", ErrNotAuthenticated, err)
	}
	id, err := spiffe.ID(m.CA.Signer().TrustDomain().Name(), claims.Mesh, claims.Service)
	if err != nil {
		return spiffeid.ID{}, token.Claims{}, nil, fmt.Errorf("identity: %w", err)
	}
	return id, claims, m, nil
}

// Issue verifies tok, then has the mesh's current signer sign csrDER for
// exactly the identity the token grants (spiffe://<trust
// domain>/<mesh>/<service>). A CSR asking for any other name is refused
// with an error wrapping ca.ErrIdentityMismatch.
func (a *Authority) Issue(ctx context.Context, tok string, csrDER []byte) (*Issued, error) {
	id, claims, m, err := a.authenticate(ctx, tok)
	if err != nil {
		return nil, err
	}
	if len(csrDER) > maxCSRLen {
		return nil, fmt.Errorf("csr: %d bytes, at most %d: %w", len(csrDER), maxCSRLen, ca.ErrCSR)
	}
	req, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("csr: %v: %w", err, ca.ErrCSR)
	}
	state := m.CA
	chain, err := state.Signer().Sign(req, id, a.opts.LeafTTL)
	if err != nil {
		return nil, err
	}
	out := &Issued{ID: id, Token: claims, Chain: chain, Bundle: state.Bundle(), Phase: state.Phase()}
	a.log.Info("certificate issued", "mesh", claims.Mesh, "service", claims.Service, "id", id.String(),
		"serial", chain[0].SerialNumber.Text(16), "not_after", chain[0].NotAfter, "token", claims.ID)
	if a.opts.OnIssue != nil {
		a.opts.OnIssue(out)
	}
	return out, nil
}
