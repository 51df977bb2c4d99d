package identity_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/trellis-mesh/trellis/internal/identity"
	"github.com/trellis-mesh/trellis/internal/identity/ca"
	"github.com/trellis-mesh/trellis/internal/identity/csr"
	"github.com/trellis-mesh/trellis/internal/identity/spiffe"
	"github.com/trellis-mesh/trellis/internal/identity/token"
)

// The whole path: the control plane makes a mesh's CA and token key, issues
// a token for a service; the proxy makes a key and CSR and trades them,
// with the token, for a certificate.
func Example() {
	// Control plane, once per mesh (then stored: json.Marshal(state),
	// token.MarshalKey(key)).
	td, _ := spiffe.TrustDomain("default.trellis.local")
	root, _ := ca.Generate(td, ca.GenerateOptions{})
	key, _ := token.GenerateKey()
	tokens, _ := token.New(token.Options{Mesh: "default", Key: key})
	mesh := &identity.Mesh{Tokens: tokens, CA: ca.NewState(root)}
	authority, _ := identity.New(identity.Options{
		Mesh: func(_ context.Context, name string) (*identity.Mesh, error) {
			if name != "default" {
				return nil, fmt.Errorf("mesh %q: %w", name, identity.ErrUnknownMesh)
			}
			return mesh, nil
		},
		Logger: slog.New(slog.DiscardHandler),
	})

	// trellis token create --mesh default --service web
	tok, _, _ := tokens.Issue("default", "web", 0)

	// Proxy: its key never leaves it.
	id, _ := spiffeid.FromString("spiffe://default.trellis.local/default/web")
	proxyKey, _ := csr.NewKey()
	req, _ := csr.Build(proxyKey, id)

	// Control plane's CSR handler.
	issued, err := authority.Issue(context.Background(), tok, req)
	if err != nil {
		fmt.Println(err)
		return
	}

	// Proxy: assemble the certificate for its TLS configs (via rotate.Rotator).
	var chain [][]byte
	for _, c := range issued.Chain {
		chain = append(chain, c.Raw)
	}
	cert, _ := csr.TLSCertificate(proxyKey, id, chain)
	fmt.Println(cert.Leaf.URIs[0], issued.Phase, len(issued.Bundle.Roots()))
	// Output: spiffe://default.trellis.local/default/web Stable 1
}
