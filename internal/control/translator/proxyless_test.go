package translator

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/xds"
)

// serveHealth starts a gRPC server with the health service on a loopback
// port and returns its port.
func serveHealth(t *testing.T) int {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, health.NewServer())
	go s.Serve(lis) //nolint:errcheck // returns when stopped
	t.Cleanup(s.Stop)
	return lis.Addr().(*net.TCPAddr).Port
}

// TestProxylessGRPC serves the translator's proxyless output with
// go-control-plane and dials it with grpc-go's own xDS resolver: the
// listener, route, cluster and endpoint shapes must be what grpc-go
// accepts, and its routing must follow the GRPCRoute.
func TestProxylessGRPC(t *testing.T) {
	stable, canary := serveHealth(t), serveHealth(t)
	objs := decodeObjects(t, fmt.Appendf(nil, `
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: greeter}
spec:
  selector: {app: greeter}
  ports: [{port: 50051, protocol: grpc}]
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: greeter-canary}
spec:
  selector: {app: greeter-canary}
  ports: [{port: 50051, protocol: grpc}]
---
apiVersion: trellis.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: greeter}
spec:
  targetRefs: [{group: "", kind: Service, name: greeter}]
  loadBalancer: {type: RingHash, hashOn: [{header: x-user}]}
  connectionLimits: {maxRequests: 100}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: greeter}
spec:
  parentRefs: [{kind: Service, name: greeter}]
  rules:
  - matches:
    - method: {service: grpc.health.v1.Health, method: Check}
      headers: [{name: x-canary, value: "yes"}]
    backendRefs: [{name: greeter-canary, port: 50051}]
  - backendRefs: [{name: greeter, port: 50051, weight: 1}, {name: greeter-canary, port: 50051, weight: 0}]
---
apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: stable, labels: {app: greeter}}
spec:
  address: 127.0.0.1
  inbound: [{port: %d, servicePort: 50051, appPort: 1}]
---
apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: canary, labels: {app: greeter-canary}}
spec:
  address: 127.0.0.1
  inbound: [{port: %d, servicePort: 50051, appPort: 1}]
`, stable, canary))
	res, err := Translate(NewIndex(objs), Proxy{Mesh: "default", Proxyless: true, NodeID: "client"})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := cachev3.NewSnapshot("1", map[resource.Type][]types.Resource{
		resource.ListenerType: res.Listeners, resource.RouteType: res.Routes,
		resource.ClusterType: res.Clusters, resource.EndpointType: res.Endpoints,
	})
	if err != nil {
		t.Fatal(err)
	}
	// go-control-plane's snap.Consistent() does not follow API listeners'
	// RDS names; Resources.Consistent does.
	if err := res.Consistent(); err != nil {
		t.Fatalf("output not consistent: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Not in ADS mode: there go-control-plane answers only requests naming
	// every resource of the type, and grpc-go asks for the names it dials.
	cache := cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)
	if err := cache.SetSnapshot(ctx, "client", snap); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(gs, serverv3.NewServer(ctx, cache, nil))
	go gs.Serve(lis) //nolint:errcheck // returns when stopped
	t.Cleanup(gs.Stop)

	bootstrap := fmt.Appendf(nil, `{"xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}], "node": {"id": "client"}}`, lis.Addr().String())
	rb, err := xds.NewXDSResolverWithConfigForTesting(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"greeter", "greeter.default:50051"} {
		conn, err := grpc.NewClient("xds:///"+target, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(rb))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		hc := healthpb.NewHealthClient(conn)
		call := func(md ...string) int {
			var p peer.Peer
			cctx := metadata.AppendToOutgoingContext(ctx, md...)
			if _, err := hc.Check(cctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true), grpc.Peer(&p)); err != nil {
				t.Fatalf("%s: Check: %v", target, err)
			}
			return p.Addr.(*net.TCPAddr).Port
		}
		for range 5 {
			if got := call(); got != stable {
				t.Errorf("%s: a call without x-canary reached port %d, want the stable backend %d", target, got, stable)
			}
			if got := call("x-canary", "yes"); got != canary {
				t.Errorf("%s: a call with x-canary reached port %d, want the canary %d", target, got, canary)
			}
		}
	}
}
