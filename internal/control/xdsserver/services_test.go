package xdsserver

import (
	"context"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestClusterDiscoveryService checks a per-type (non-ADS) stream.
func TestClusterDiscoveryService(t *testing.T) {
	srv := New(Options{})
	cc := dial(t, startServer(t, srv))
	if _, err := srv.SetResources("default/cds", basic(t, time.Second, "127.0.0.1:1001")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	stream, err := clusterservice.NewClusterDiscoveryServiceClient(cc).StreamClusters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := &corev3.Node{Id: "default/cds", Cluster: "default"}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	r, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(r.GetResources()) != 1 {
		t.Fatalf("%d clusters, want 1", len(r.GetResources()))
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resource.ClusterType, VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ACK", func() bool {
		st, _ := srv.Status("default/cds")
		return st.Connected && st.Types[resource.ClusterType].AckedVersion == r.GetVersionInfo()
	})
}

// TestDeltaADS checks that delta streams connect, receive and are tracked.
func TestDeltaADS(t *testing.T) {
	connected := make(chan string, 1)
	var srv *Server
	srv = New(Options{OnConnect: func(_ context.Context, n *corev3.Node) {
		if _, err := srv.SetResources(n.GetId(), basic(t, time.Second, "127.0.0.1:1001")); err != nil {
			t.Error(err)
		}
		connected <- n.GetId()
	}})
	cc := dial(t, startServer(t, srv))
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := &corev3.Node{Id: "default/delta", Cluster: "default"}
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: resource.ClusterType, ResourceNamesSubscribe: []string{"*"}}); err != nil {
		t.Fatal(err)
	}
	r, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got := <-connected; got != "default/delta" {
		t.Errorf("OnConnect for %q", got)
	}
	if len(r.GetResources()) != 1 || r.GetSystemVersionInfo() == "" {
		t.Fatalf("response: %d resources, version %q", len(r.GetResources()), r.GetSystemVersionInfo())
	}
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.ClusterType, ResponseNonce: r.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delta ACK", func() bool {
		st, _ := srv.Status("default/delta")
		return st.Types[resource.ClusterType].AckedVersion == r.GetSystemVersionInfo()
	})
}

// TestNodeIDRequired checks that a stream without a node ID is refused.
func TestNodeIDRequired(t *testing.T) {
	srv := New(Options{})
	cc := dial(t, startServer(t, srv))
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Cluster: "default"}, TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "node.id: required") {
		t.Fatalf("Recv: %v, want InvalidArgument node.id: required", err)
	}
	if got := srv.Nodes(); len(got) != 0 {
		t.Errorf("Nodes() = %v", got)
	}
}
