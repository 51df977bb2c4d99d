package meshca_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellis-mesh/trellis/internal/control/meshca"
)

// TestIdentify: the token's holder learns the identity it grants (the
// trust domain lives only in the control plane); a bad token learns
// nothing.
func TestIdentify(t *testing.T) {
	p := start(t, openStore(t), "a")
	ctx := ctxT(t)
	tok, err := p.api.CreateToken(ctx, "default", "web", "")
	if err != nil {
		t.Fatal(err)
	}
	call := func(token string) (*structpb.Struct, error) {
		out := new(structpb.Struct)
		cctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		return out, p.cc.Invoke(cctx, meshca.IdentifyMethod, &structpb.Struct{}, out)
	}
	out, err := call(tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	if got := out.GetFields()["id"].GetStringValue(); got != "spiffe://default.trellis.local/default/web" {
		t.Fatalf("identity %q", got)
	}
	if _, err := call(tok.Token + "x"); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("tampered token: %v, want Unauthenticated", err)
	}
	if _, err := p.api.RevokeToken(ctx, "default", tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := call(tok.Token); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("revoked token: %v, want Unauthenticated", err)
	}
}
