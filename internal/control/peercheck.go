package control

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/service/metrics/v3"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
	"github.com/trellis-mesh/trellis/internal/store"
	"github.com/trellis-mesh/trellis/internal/telemetry/tap"
)

// Trust model of the xDS endpoint (docs/security.md, "The control plane's
// endpoints"):
//
//   - a plaintext connection (a loopback listener, or --tls off) is
//     trusted as before: whoever reaches it may name any node;
//   - on a TLS connection the certificate service (unary, authenticated
//     by the dataplane token) is always open;
//   - a stream that names a node (xDS, metrics, tap) is checked once its first
//     message arrives: with a client certificate, the certificate must
//     verify against the node's mesh trust bundle and carry the SPIFFE ID
//     of the Dataplane the node id names; without one, only a proxyless
//     sidecar of a mesh whose mutual TLS is DISABLED may go on;
//   - a proxyless client (no Dataplane, no secrets, the mesh-wide routing
//     every sidecar sees) is not checked.
//
// Unary calls naming a node (xDS Fetch) are checked the same way. A
// refused call ends with PermissionDenied, logged, before the node is
// registered or sent anything.

// tlsPeer returns the TLS state of the connection ctx belongs to; ok
// false for a plaintext one.
func tlsPeer(ctx context.Context) (state tls.ConnectionState, addr string, ok bool) {
	p, found := peer.FromContext(ctx)
	if !found {
		return tls.ConnectionState{}, "", false
	}
	ti, isTLS := p.AuthInfo.(credentials.TLSInfo)
	return ti.State, p.Addr.String(), isTLS
}

// peerUnaryInterceptor checks the node of unary calls naming one (xDS
// Fetch) on a TLS connection; the certificate service names none.
func (c *Control) peerUnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if state, addr, ok := tlsPeer(ctx); ok {
		if r, named := req.(interface{ GetNode() *corev3.Node }); named {
			if err := c.allowPeer(ctx, info.FullMethod, addr, r.GetNode(), state.PeerCertificates); err != nil {
				return nil, err
			}
		}
	}
	return handler(ctx, req)
}

// peerStreamInterceptor reads the first message of every stream on a TLS
// connection and checks the node it names before the handler sees it.
func (c *Control) peerStreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	state, addr, ok := tlsPeer(ss.Context())
	if !ok {
		return handler(srv, ss) // plaintext: trusted (loopback)
	}
	var first proto.Message
	name := info.FullMethod[strings.LastIndexByte(info.FullMethod, '/')+1:]
	switch {
	case info.FullMethod == "/envoy.service.metrics.v3.MetricsService/StreamMetrics":
		first = &metricsv3.StreamMetricsMessage{}
	case info.FullMethod == tap.WatchMethod:
		first = &wrapperspb.BytesValue{}
	case strings.HasPrefix(name, "Delta"):
		first = &discoveryv3.DeltaDiscoveryRequest{}
	case strings.HasPrefix(name, "Stream"):
		first = &discoveryv3.DiscoveryRequest{}
	default:
		return status.Errorf(codes.PermissionDenied, "stream %s is not served over TLS", info.FullMethod)
	}
	if err := ss.RecvMsg(first); err != nil {
		return err
	}
	var node *corev3.Node
	switch m := first.(type) {
	case interface{ GetNode() *corev3.Node }:
		node = m.GetNode()
	case *metricsv3.StreamMetricsMessage:
		node = m.GetIdentifier().GetNode()
	case *wrapperspb.BytesValue:
		node = &corev3.Node{Id: tap.NodeOf(m)}
	}
	if err := c.allowPeer(ss.Context(), info.FullMethod, addr, node, state.PeerCertificates); err != nil {
		return err
	}
	return handler(srv, &replayStream{ServerStream: ss, first: first})
}

// allowPeer is checkPeer as a gRPC status, logged when it refuses.
func (c *Control) allowPeer(ctx context.Context, method, addr string, node *corev3.Node, certs []*x509.Certificate) error {
	if err := c.checkPeer(ctx, node, certs); err != nil {
		c.log.Warn("refused a call: the peer may not act for the node it names", "method", method, "peer", addr, "node", node.GetId(), "error", err.Error())
		return status.Error(codes.PermissionDenied, err.Error())
	}
	return nil
}

// replayStream hands the handler the first message the interceptor read.
type replayStream struct {
	grpc.ServerStream
	first proto.Message
}

func (s *replayStream) RecvMsg(m any) error {
	if s.first == nil {
		return s.ServerStream.RecvMsg(m)
	}
	first := s.first
	s.first = nil
	pm, ok := m.(proto.Message)
	if !ok || pm.ProtoReflect().Descriptor() != first.ProtoReflect().Descriptor() {
		return status.Errorf(codes.Internal, "first message: %T, read as %T", m, first)
	}
	proto.Reset(pm)
	proto.Merge(pm, first)
	return nil
}

// checkPeer decides whether a TLS peer that presented certs (nil: none)
// may hold a stream for node.
func (c *Control) checkPeer(ctx context.Context, node *corev3.Node, certs []*x509.Certificate) error {
	if node.GetId() == "" {
		return errors.New("the first message names no node")
	}
	if node.GetMetadata().GetFields()[metaProxyless].GetBoolValue() {
		return nil // proxyless gRPC clients get mesh-wide routing, no secrets
	}
	dps, err := c.claimedDataplanes(ctx, node)
	if err != nil {
		return err
	}
	mesh := v1alpha1.MeshOf(dps[0])
	for _, dp := range dps[1:] {
		if m := v1alpha1.MeshOf(dp); m != mesh {
			return fmt.Errorf("node %q: the stored Dataplane is in mesh %q, the one sent in mesh %q", node.GetId(), mesh, m)
		}
	}
	meshObj, err := c.meshObject(ctx, mesh)
	if err != nil {
		return err
	}
	if len(certs) == 0 {
		if v1alpha1.MTLSModeOf(meshObj) == v1alpha1.MTLSDisabled {
			return nil
		}
		return fmt.Errorf("node %q is a sidecar of mesh %q, which has mutual TLS: present its mesh certificate (only the certificate service may be called without one)", node.GetId(), mesh)
	}
	td, err := spiffeid.TrustDomainFromString(v1alpha1.TrustDomainOf(mesh, meshObj))
	if err != nil {
		return fmt.Errorf("mesh %q: %w", mesh, err)
	}
	bundlePEM, _, ok := c.ca.Bundle(mesh)
	if !ok {
		return fmt.Errorf("mesh %q has no CA yet, so the client certificate cannot be verified", mesh)
	}
	b, err := x509bundle.Parse(td, bundlePEM)
	if err != nil {
		return fmt.Errorf("mesh %q trust bundle: %w", mesh, err)
	}
	raw := make([][]byte, len(certs))
	for i, cert := range certs {
		raw[i] = cert.Raw
	}
	got, _, err := x509svid.ParseAndVerify(raw, b)
	if err != nil {
		return fmt.Errorf("client certificate does not verify against mesh %q's trust bundle: %w", mesh, err)
	}
	for _, dp := range dps {
		want, err := spiffeid.FromSegments(td, mesh, v1alpha1.IdentityService(dp))
		if err != nil {
			return fmt.Errorf("node %q: identity: %w", node.GetId(), err)
		}
		if got != want {
			return fmt.Errorf("client certificate is %q, but node %q is a Dataplane of identity %q", got, node.GetId(), want)
		}
	}
	return nil
}

// claimedDataplanes returns the Dataplanes a node claims to be: the one
// its metadata carries (registration would store it) and the one stored
// under its id; at least one.
func (c *Control) claimedDataplanes(ctx context.Context, node *corev3.Node) ([]*v1alpha1.Dataplane, error) {
	var dps []*v1alpha1.Dataplane
	if node.GetMetadata().GetFields()[metaDataplane] != nil {
		dp, err := c.reg.dataplane(ctx, node)
		if err != nil {
			return nil, err
		}
		dps = append(dps, dp)
	}
	if ns, name, ok := splitID(node.GetId()); ok {
		dp, err := c.reg.stored(ctx, ns, name)
		switch {
		case err == nil:
			v1alpha1.Default(dp)
			dps = append(dps, dp)
		case !errors.Is(err, store.ErrNotFound):
			return nil, err
		}
	}
	if len(dps) == 0 {
		return nil, fmt.Errorf("node %q names no Dataplane (none stored under that id, none in its metadata)", node.GetId())
	}
	return dps, nil
}

// meshObject returns the Mesh object named mesh, nil when there is none.
func (c *Control) meshObject(ctx context.Context, mesh string) (*v1alpha1.Mesh, error) {
	res, err := c.store.Get(ctx, store.Key{Kind: v1alpha1.KindMesh, Name: mesh})
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	obj, err := v1alpha1.Decode(res.Value)
	if err != nil {
		return nil, fmt.Errorf("mesh %q: %w", mesh, err)
	}
	m, _ := obj.(*v1alpha1.Mesh)
	return m, nil
}
