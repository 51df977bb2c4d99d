// Package signtest serves the certificate service of package certclient's
// wire contract on 127.0.0.1:0, backed by a real identity.Authority (a
// generated CA and token issuer), for tests of the proxy side. It is what
// the control plane serves, minus the store.
package signtest

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellis-mesh/trellis/internal/identity"
	"github.com/trellis-mesh/trellis/internal/identity/ca"
	"github.com/trellis-mesh/trellis/internal/identity/spiffe"
	"github.com/trellis-mesh/trellis/internal/identity/token"
)

// Options configure Start. The zero value is a mesh "default" in trust
// domain "default.trellis.local" with 24h leaves.
type Options struct {
	// Mesh is the mesh's name. Empty means "default".
	Mesh string
	// TrustDomain is the mesh's trust domain. Empty means
	// "<mesh>.trellis.local".
	TrustDomain string
	// LeafTTL is the lifetime of issued leaves. Zero means 24h.
	LeafTTL time.Duration
	// NoIdentify leaves Identify out (Unimplemented), as a control plane
	// predating it would.
	NoIdentify bool
	// Register, when set, registers the service on this server instead
	// of a new one (the test's xDS server), and Start does not serve.
	Register *grpc.Server
	// InProcess starts no server at all: use Server.Conn (for tests
	// under testing/synctest, where sockets cannot be waited on).
	InProcess bool
}

// Server is a running certificate service.
type Server struct {
	// Addr is host:port of the gRPC server ("" with Options.Register).
	Addr string
	// Tokens issues and verifies the mesh's dataplane tokens.
	Tokens *token.Issuer
	// CA is the mesh's CA state.
	CA *ca.State
	// Authority is the real issuance logic the service calls.
	Authority *identity.Authority
	// Signed counts certificates issued; Refused counts refused calls.
	Signed, Refused atomic.Int64
	// LastNode is the trellis-node metadata of the last call.
	LastNode atomic.Value

	revoked atomic.Pointer[map[string]bool]
	methods map[string]method
}

// Start starts the service; it stops in t.Cleanup.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Mesh == "" {
		opts.Mesh = "default"
	}
	if opts.TrustDomain == "" {
		opts.TrustDomain = opts.Mesh + ".trellis.local"
	}
	td, err := spiffe.TrustDomain(opts.TrustDomain)
	if err != nil {
		t.Fatal(err)
	}
	// A millisecond of clock skew: with the default minute, a leaf of a
	// few seconds would be past its half-life when issued.
	root, err := ca.Generate(td, ca.GenerateOptions{Options: ca.Options{LeafTTL: opts.LeafTTL, ClockSkew: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{CA: ca.NewState(root)}
	none := map[string]bool{}
	s.revoked.Store(&none)
	key, err := token.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s.Tokens, err = token.New(token.Options{Mesh: opts.Mesh, Key: key, Revoked: func(id string) bool { return (*s.revoked.Load())[id] }})
	if err != nil {
		t.Fatal(err)
	}
	m := &identity.Mesh{Tokens: s.Tokens, CA: s.CA}
	s.Authority, err = identity.New(identity.Options{
		Mesh: func(_ context.Context, name string) (*identity.Mesh, error) {
			if name != opts.Mesh {
				return nil, fmt.Errorf("mesh %q: %w", name, identity.ErrUnknownMesh)
			}
			return m, nil
		},
		LeafTTL: opts.LeafTTL,
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	desc := grpc.ServiceDesc{ServiceName: "trellis.identity.v1.Identity", HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Sign", Handler: s.handler(s.sign)}}}
	if !opts.NoIdentify {
		desc.Methods = append(desc.Methods, grpc.MethodDesc{MethodName: "Identify", Handler: s.handler(s.identify)})
	}
	s.methods = map[string]method{"/trellis.identity.v1.Identity/Sign": s.sign}
	if !opts.NoIdentify {
		s.methods["/trellis.identity.v1.Identity/Identify"] = s.identify
	}
	switch {
	case opts.InProcess:
		return s
	case opts.Register != nil:
		opts.Register.RegisterService(&desc, s)
		return s
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	srv.RegisterService(&desc, s)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	s.Addr = ln.Addr().String()
	return s
}

// Token issues a token for service.
func (s *Server) Token(t testing.TB, service string) (tok, id string) {
	t.Helper()
	tok, c, err := s.Tokens.Issue(s.Tokens.Mesh(), service, 0)
	if err != nil {
		t.Fatal(err)
	}
	return tok, c.ID
}

// Revoke revokes the token with this ID.
func (s *Server) Revoke(id string) {
	for {
		old := s.revoked.Load()
		next := map[string]bool{id: true}
		for k := range *old {
			next[k] = true
		}
		if s.revoked.CompareAndSwap(old, &next) {
			return
		}
	}
}

// Conn returns a connection that calls the service in process, with no
// sockets or gRPC transport; unary calls only.
func (s *Server) Conn() grpc.ClientConnInterface { return inProcess{s} }

type inProcess struct{ s *Server }

func (c inProcess) Invoke(ctx context.Context, name string, args, reply any, _ ...grpc.CallOption) error {
	m, ok := c.s.methods[name]
	if !ok {
		return status.Errorf(codes.Unimplemented, "unknown method %s", name)
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	resp, err := c.s.handler(m)(nil, metadata.NewIncomingContext(ctx, md), func(v any) error {
		proto.Merge(v.(*structpb.Struct), args.(*structpb.Struct))
		return nil
	}, nil)
	if err != nil {
		return err
	}
	proto.Merge(reply.(*structpb.Struct), resp.(*structpb.Struct))
	return nil
}

func (inProcess) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unimplemented, "signtest: streams are not served in process")
}

type method func(ctx context.Context, tok string, req *structpb.Struct) (*structpb.Struct, error)

func (s *Server) handler(m method) func(any, context.Context, func(any) error, grpc.UnaryServerInterceptor) (any, error) {
	return func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		req := &structpb.Struct{}
		if err := dec(req); err != nil {
			return nil, err
		}
		tok := ""
		if v := metadata.ValueFromIncomingContext(ctx, "authorization"); len(v) == 1 {
			tok, _ = strings.CutPrefix(v[0], "Bearer ")
		}
		if v := metadata.ValueFromIncomingContext(ctx, "trellis-node"); len(v) == 1 {
			s.LastNode.Store(v[0])
		}
		resp, err := m(ctx, tok, req)
		if err != nil {
			s.Refused.Add(1)
		}
		return resp, err
	}
}

func (s *Server) identify(ctx context.Context, tok string, _ *structpb.Struct) (*structpb.Struct, error) {
	id, _, err := s.Authority.Authenticate(ctx, tok)
	if err != nil {
		return nil, toStatus(err)
	}
	return structpb.NewStruct(map[string]any{"id": id.String()})
}

func (s *Server) sign(ctx context.Context, tok string, req *structpb.Struct) (*structpb.Struct, error) {
	der, err := base64.StdEncoding.DecodeString(req.GetFields()["csr"].GetStringValue())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "csr: %v", err)
	}
	issued, err := s.Authority.Issue(ctx, tok, der)
	if err != nil {
		return nil, toStatus(err)
	}
	chain := make([]any, len(issued.Chain))
	for i, c := range issued.Chain {
		chain[i] = base64.StdEncoding.EncodeToString(c.Raw)
	}
	s.Signed.Add(1)
	return structpb.NewStruct(map[string]any{"chain": chain, "bundle": string(issued.Bundle.PEM()), "id": issued.ID.String()})
}

// toStatus maps Authority errors to gRPC codes as documented on
// identity.ErrNotAuthenticated.
func toStatus(err error) error {
	switch {
	case errors.Is(err, identity.ErrNotAuthenticated):
		return status.Error(codes.Unauthenticated, err.Error())
	case errors.Is(err, ca.ErrIdentityMismatch):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, ca.ErrCSR):
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}
