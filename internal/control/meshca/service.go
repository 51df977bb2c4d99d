package meshca

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellis-mesh/trellis/internal/identity"
	"github.com/trellis-mesh/trellis/internal/identity/ca"
	"github.com/trellis-mesh/trellis/internal/identity/token"
	"github.com/trellis-mesh/trellis/internal/store"
)

// The certificate service, served on the control plane's xDS gRPC port
// without generated code: request and response are google.protobuf.Struct.
//
//	request metadata  authorization: Bearer <dataplane token>
//	                  trellis-node: <node id>   (optional; see NodeMetadata)
//	request           {"csr": "<base64 (std) of the CSR's DER>"}
//	response          {"chain": ["<base64 DER leaf>", "<base64 DER intermediate>", ...],
//	                   "bundle": "<PEM of the mesh's trust bundle>"}
//
// Status codes: Unauthenticated (no, malformed, badly signed, expired or
// revoked token, or one for a mesh that no longer exists),
// PermissionDenied (the CSR asks for another identity than the token
// grants), InvalidArgument (a malformed or non-conforming CSR), Internal
// otherwise. Messages name what is wrong.
const (
	// ServiceName is the gRPC service.
	ServiceName = "trellis.identity.v1.Identity"
	// SignMethod is the full method name of Sign.
	SignMethod = "/" + ServiceName + "/Sign"
	// IdentifyMethod is the full method name of Identify: it answers
	// {"id": "spiffe://<td>/<mesh>/<service>"}, the identity the caller's
	// token grants, so a proxy can build its CSR without knowing the
	// mesh's trust domain.
	IdentifyMethod = "/" + ServiceName + "/Identify"
	// NodeMetadata is the optional request metadata key carrying the
	// caller's xDS node id. With it, a proxy's renewals replace its
	// earlier leaf in the issued-leaf records that rotation progress is
	// counted from; without it, a proxy is told apart by token id and
	// source IP address.
	NodeMetadata = "trellis-node"
)

// signer is the handler type of the service description.
type signer interface {
	sign(ctx context.Context, req *structpb.Struct) (*structpb.Struct, error)
	identify(ctx context.Context, req *structpb.Struct) (*structpb.Struct, error)
}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: ServiceName,
	HandlerType: (*signer)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "Sign", Handler: signHandler},
		{MethodName: "Identify", Handler: identifyHandler},
	},
	Metadata: "trellis/identity/v1/identity.proto",
}

func signHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := new(structpb.Struct)
	if err := dec(in); err != nil {
		return nil, err
	}
	if interceptor == nil {
		return srv.(signer).sign(ctx, in)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: SignMethod}
	return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
		return srv.(signer).sign(ctx, req.(*structpb.Struct))
	})
}

func identifyHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := new(structpb.Struct)
	if err := dec(in); err != nil {
		return nil, err
	}
	if interceptor == nil {
		return srv.(signer).identify(ctx, in)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: IdentifyMethod}
	return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
		return srv.(signer).identify(ctx, req.(*structpb.Struct))
	})
}

// identify answers the identity the caller's token grants.
func (m *Manager) identify(ctx context.Context, _ *structpb.Struct) (*structpb.Struct, error) {
	tok, err := bearer(ctx)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	auth, err := m.authority(m.opts.LeafTTL)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	call := &signCall{}
	id, _, err := auth.Authenticate(context.WithValue(ctx, callKey{}, call), tok)
	if err != nil {
		return nil, grpcError(err, call)
	}
	out, err := structpb.NewStruct(map[string]any{"id": id.String()})
	if err != nil {
		return nil, status.Errorf(codes.Internal, "response: %v", err)
	}
	return out, nil
}

// Register adds the certificate service to g (the control plane's xDS
// gRPC server).
func (m *Manager) Register(g grpc.ServiceRegistrar) { g.RegisterService(&serviceDesc, m) }

var _ signer = (*Manager)(nil)

// signCall carries, through Authority.Issue's context, what the Mesh
// lookup and the revocation hook learned during one request.
type signCall struct {
	state    *ca.State // the CA state that signed
	storeErr error     // a store failure while checking revocation
}

type callKey struct{}

func (m *Manager) sign(ctx context.Context, req *structpb.Struct) (*structpb.Struct, error) {
	tok, err := bearer(ctx)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	field, ok := req.GetFields()["csr"]
	if !ok || field.GetStringValue() == "" {
		return nil, status.Error(codes.InvalidArgument, `request: "csr": missing; want the base64 (standard encoding) of a CSR's DER`)
	}
	der, err := base64.StdEncoding.DecodeString(field.GetStringValue())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, `request: "csr": not base64 (standard encoding): %v`, err)
	}
	ttl := m.opts.LeafTTL
	if name, err := token.MeshOf(tok); err == nil && checkMesh(name) == nil {
		ttl = m.leafTTL(ctx, name) // the token is verified by Issue, for this mesh
	}
	auth, err := m.authority(ttl)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	call := &signCall{}
	issued, err := auth.Issue(context.WithValue(ctx, callKey{}, call), tok, der)
	if err != nil {
		return nil, grpcError(err, call)
	}
	if err := m.recordLeaf(ctx, issued, call.state); err != nil {
		// Unrecorded, the leaf would escape the count a rotation waits on.
		return nil, status.Errorf(codes.Internal, "recording the issued certificate: %v", err)
	}
	chain := make([]any, len(issued.Chain))
	for i, c := range issued.Chain {
		chain[i] = base64.StdEncoding.EncodeToString(c.Raw)
	}
	out, err := structpb.NewStruct(map[string]any{"chain": chain, "bundle": string(issued.Bundle.PEM())})
	if err != nil {
		return nil, status.Errorf(codes.Internal, "response: %v", err)
	}
	return out, nil
}

// grpcError maps Authority.Issue's errors to status codes: the transport
// boundary, the only place they are translated.
func grpcError(err error, call *signCall) error {
	switch {
	case call.storeErr != nil && errors.Is(err, token.ErrRevoked):
		return status.Errorf(codes.Internal, "token revocation check: store: %v", call.storeErr)
	case errors.Is(err, identity.ErrNotAuthenticated):
		return status.Error(codes.Unauthenticated, err.Error())
	case errors.Is(err, ca.ErrIdentityMismatch): // before ErrCSR, which it also wraps
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, ca.ErrCSR):
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

func bearer(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) != 1 {
		return "", errors.New("authorization metadata: want one \"Bearer <dataplane token>\"")
	}
	scheme, tok, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", errors.New("authorization metadata: want \"Bearer <dataplane token>\"")
	}
	return strings.TrimSpace(tok), nil
}

// authorityMesh is the Authority's mesh lookup: the mesh's token key and
// CA state as stored now (a Get of each, parsed again only when changed),
// with a revocation hook that reads the token's record from the store, so
// revocations and rotation steps made on any replica hold at once.
func (m *Manager) authorityMesh(ctx context.Context, name string) (*identity.Mesh, error) {
	if err := checkMesh(name); err != nil {
		return nil, fmt.Errorf("%w: %w", identity.ErrUnknownMesh, err)
	}
	key, err := m.loadKey(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("mesh %q has no token key: %w", name, identity.ErrUnknownMesh)
	}
	if err != nil {
		return nil, err
	}
	st, _, err := m.loadCA(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		st, err = m.Ensure(ctx, name)
		if errors.Is(err, ErrUnknownMesh) {
			return nil, fmt.Errorf("%w: %w", identity.ErrUnknownMesh, err)
		}
	}
	if err != nil {
		return nil, err
	}
	call, _ := ctx.Value(callKey{}).(*signCall)
	iss, err := token.New(token.Options{Mesh: name, Key: key, Revoked: func(id string) bool {
		r, err := m.revoked(ctx, name, id)
		if err != nil {
			m.log.Error("token revocation check failed; refusing the token", "mesh", name, "id", id, "error", err)
			if call != nil {
				call.storeErr = err
			}
		}
		return r
	}})
	if err != nil {
		return nil, err
	}
	if call != nil {
		call.state = st
	}
	return &identity.Mesh{Tokens: iss, CA: st}, nil
}

// nodeOf names the caller for the issued-leaf records.
func nodeOf(ctx context.Context, tokenID string) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(NodeMetadata); len(v) == 1 && v[0] != "" {
		return "node:" + v[0]
	}
	host := "?"
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		host = p.Addr.String()
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
	}
	return "token:" + tokenID + "@" + host
}

// Sign is the client side of the certificate service, for proxies and
// tests: it sends csrDER with the token over cc and returns the chain
// (leaf first, DER) and the trust bundle (PEM). Errors are gRPC status
// errors (status.Code tells which).
func Sign(ctx context.Context, cc grpc.ClientConnInterface, tok, node string, csrDER []byte) (chain [][]byte, bundlePEM []byte, err error) {
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	if node != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, NodeMetadata, node)
	}
	req, err := structpb.NewStruct(map[string]any{"csr": base64.StdEncoding.EncodeToString(csrDER)})
	if err != nil {
		return nil, nil, err
	}
	resp := new(structpb.Struct)
	if err := cc.Invoke(ctx, SignMethod, req, resp); err != nil {
		return nil, nil, err
	}
	for i, v := range resp.GetFields()["chain"].GetListValue().GetValues() {
		der, err := base64.StdEncoding.DecodeString(v.GetStringValue())
		if err != nil {
			return nil, nil, fmt.Errorf("response: chain[%d]: %w", i, err)
		}
		chain = append(chain, der)
	}
	if len(chain) == 0 {
		return nil, nil, errors.New("response: chain: empty")
	}
	return chain, []byte(resp.GetFields()["bundle"].GetStringValue()), nil
}
