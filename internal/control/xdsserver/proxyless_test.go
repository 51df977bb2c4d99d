package xdsserver

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/trellis-mesh/trellis/internal/control/grpcbootstrap"
	"google.golang.org/grpc/xds"
)

// backend is a gRPC test server that names itself in a response header.
type backend struct {
	grpc_testing.UnimplementedTestServiceServer
	name string
}

func (b backend) EmptyCall(ctx context.Context, _ *grpc_testing.Empty) (*grpc_testing.Empty, error) {
	_ = grpc.SetHeader(ctx, metadata.Pairs("backend", b.name))
	return &grpc_testing.Empty{}, nil
}

func startBackend(t *testing.T, name string) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	grpc_testing.RegisterTestServiceServer(g, backend{name: name})
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return lis.Addr().String()
}

// echoWeighted serves target "echo" split by weight between clusters
// echo-a (backend a) and echo-b (backend b).
func echoWeighted(t *testing.T, a, b string, wa, wb uint32) Resources {
	weights := map[string]uint32{}
	r := Resources{Listeners: []types.Resource{apiListener(t, "echo", "echo")}}
	for _, c := range []struct {
		name, addr string
		w          uint32
	}{{"echo-a", a, wa}, {"echo-b", b, wb}} {
		if c.w == 0 {
			continue
		}
		weights[c.name] = c.w
		r.Clusters = append(r.Clusters, edsCluster(c.name, clusterv3.Cluster_ROUND_ROBIN))
		r.Endpoints = append(r.Endpoints, loadAssignment(c.name, c.addr))
	}
	r.Routes = []types.Resource{weightedRoute("echo", weights)}
	return r
}

// echoOneCluster serves target "echo" from one cluster balancing over
// both backends with lb.
func echoOneCluster(t *testing.T, lb clusterv3.Cluster_LbPolicy, addrs ...string) Resources {
	return Resources{
		Listeners: []types.Resource{apiListener(t, "echo", "echo")},
		Routes:    []types.Resource{weightedRoute("echo", map[string]uint32{"echo-all": 1})},
		Clusters:  []types.Resource{edsCluster("echo-all", lb)},
		Endpoints: []types.Resource{loadAssignment("echo-all", addrs...)},
	}
}

// call makes n calls and counts the backends that answered; it fails the
// test on any error.
func call(t *testing.T, c grpc_testing.TestServiceClient, n int) map[string]int {
	t.Helper()
	got, err := tryCall(c, n)
	if err != nil {
		t.Fatalf("EmptyCall: %v", err)
	}
	return got
}

// tryCall is call returning the first error instead.
func tryCall(c grpc_testing.TestServiceClient, n int) (map[string]int, error) {
	got := map[string]int{}
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		var md metadata.MD
		_, err := c.EmptyCall(ctx, &grpc_testing.Empty{}, grpc.Header(&md))
		cancel()
		if err != nil {
			return got, err
		}
		got[md.Get("backend")[0]]++
	}
	return got, nil
}

// converge polls until 20 calls in a row succeed and match want. While a
// route moves between clusters grpc-go can fail RPCs with UNAVAILABLE:
//   - "unknown cluster selected for RPC" when a route moves to a cluster the
//     channel has not used yet: its ClientConn installs the new config
//     selector before the cluster manager balancer has the new cluster
//     (google.golang.org/grpc v1.85 clientconn.go,
//     applyServiceConfigAndBalancer);
//   - "resource ... has been removed" when the CDS update removing the old
//     clusters arrives before the RDS update moving the route away from
//     them (the server does not order those for proxyless clients).
//
// Calls are not wait-for-ready: such an RPC keeps the cluster it picked and
// would wait for a removed cluster until its deadline. Those errors are
// logged, not failures.
func converge(t *testing.T, c grpc_testing.TestServiceClient, what string, want func(map[string]int) bool) {
	t.Helper()
	waitFor(t, what, func() bool {
		got, err := tryCall(c, 20)
		if err != nil {
			t.Logf("%s: transient: %v", what, err)
			return false
		}
		return want(got)
	})
}

// TestProxylessGRPC drives grpc-go's own xds resolver, configured by a
// grpcbootstrap bootstrap, against the server: weighted routes, round robin, a shift of
// all weight, and a rejected update that leaves traffic as it was.
func TestProxylessGRPC(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	srv := New(Options{})
	addr := startServer(t, srv)
	const nodeID = "proxyless/echo-client"
	// Resources set before the client connects are its first config. They
	// also serve a target "other" the client never dials: grpc-go asks for
	// listener "echo" only, and gets it (an ADS-mode cache would wait for a
	// request naming every listener).
	first := echoWeighted(t, a, b, 80, 20)
	first.Listeners = append(first.Listeners, apiListener(t, "other", "other"))
	first.Routes = append(first.Routes, weightedRoute("other", map[string]uint32{"echo-a": 1}))
	if _, err := srv.SetResources(nodeID, first); err != nil {
		t.Fatal(err)
	}
	bs, err := grpcbootstrap.Generate(grpcbootstrap.Options{ServerURI: addr, Service: "echo-client", NodeID: nodeID})
	if err != nil {
		t.Fatal(err)
	}
	// An application puts the bootstrap in GRPC_XDS_BOOTSTRAP(_CONFIG),
	// which grpc-go reads at init; the test hands the same bytes to the
	// same resolver through its public constructor.
	xdsResolver, err := xds.NewXDSResolverWithConfigForTesting(bs)
	if err != nil {
		t.Fatalf("grpc-go refused the bootstrap: %v", err)
	}
	cc, err := grpc.NewClient("xds:///echo", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(xdsResolver))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	client := grpc_testing.NewTestServiceClient(cc)

	// Wait for the first configuration.
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := client.EmptyCall(ctx, &grpc_testing.Empty{}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("first call: %v", err)
	}
	// 80/20: with 400 calls the share of a lies in [70%, 90%] with a
	// probability above 1-1e-6 (binomial, sd 2 points).
	got := call(t, client, 400)
	if share := got["a"] * 100 / 400; share < 70 || share > 90 {
		t.Errorf("80/20 split: got %v", got)
	}
	st, _ := srv.Status(nodeID)
	if !st.Connected || st.Node.GetCluster() != "default" {
		t.Errorf("status = %+v", st)
	}
	for _, typ := range []string{resource.ListenerType, resource.RouteType, resource.ClusterType, resource.EndpointType} {
		if ts := st.Types[typ]; ts.AckedVersion == "" || ts.AckedVersion != ts.SentVersion {
			t.Errorf("%s: %+v, want acknowledged", typ, ts)
		}
	}

	// One cluster, round robin over both backends.
	if _, err := srv.SetResources(nodeID, echoOneCluster(t, clusterv3.Cluster_ROUND_ROBIN, a, b)); err != nil {
		t.Fatal(err)
	}
	converge(t, client, "round robin", func(got map[string]int) bool { return got["a"] == 10 && got["b"] == 10 })

	// All weight to b.
	if _, err := srv.SetResources(nodeID, echoWeighted(t, a, b, 0, 100)); err != nil {
		t.Fatal(err)
	}
	converge(t, client, "all to b", func(got map[string]int) bool { return got["b"] == 20 })

	// An update grpc-go rejects (an LB policy it does not implement) is
	// NACKed, shows in the status, and the client keeps its config.
	bad := echoWeighted(t, a, b, 0, 100)
	bad.Clusters[0].(*clusterv3.Cluster).LbPolicy = clusterv3.Cluster_MAGLEV
	if _, err := srv.SetResources(nodeID, bad); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "cluster NACK", func() bool {
		st, _ := srv.Status(nodeID)
		return st.Types[resource.ClusterType].Rejected()
	})
	st, _ = srv.Status(nodeID)
	t.Logf("grpc-go NACK: %s", st.Types[resource.ClusterType].NackError)
	if got := call(t, client, 20); got["b"] != 20 {
		t.Errorf("after NACK: got %v, want all to b", got)
	}
}

// TestProxylessShiftWithoutErrors shifts all traffic from cluster echo-a to
// echo-b, dropping echo-a from the configuration, while RPCs run: none
// fails, because echo-a stays published until grpc-go has acknowledged the
// routes that no longer use it (retain.go).
func TestProxylessShiftWithoutErrors(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	srv := New(Options{})
	addr := startServer(t, srv)
	const nodeID = "proxyless/shift"
	if _, err := srv.SetResources(nodeID, echoWeighted(t, a, b, 50, 50)); err != nil {
		t.Fatal(err)
	}
	bs, err := grpcbootstrap.Generate(grpcbootstrap.Options{ServerURI: addr, Service: "shift", NodeID: nodeID})
	if err != nil {
		t.Fatal(err)
	}
	xdsResolver, err := xds.NewXDSResolverWithConfigForTesting(bs)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///echo", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(xdsResolver))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	client := grpc_testing.NewTestServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := client.EmptyCall(ctx, &grpc_testing.Empty{}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("first call: %v", err)
	}
	// Both clusters in use before the shift.
	converge(t, client, "both clusters", func(got map[string]int) bool { return got["a"] > 0 && got["b"] > 0 })

	// Eight callers run through the shift; every call succeeds.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failures atomic.Int64
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := tryCall(client, 1); err != nil {
					if failures.Add(1) == 1 {
						t.Errorf("call during the shift: %v", err)
					}
				}
			}
		})
	}
	if _, err := srv.SetResources(nodeID, echoWeighted(t, a, b, 0, 100)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "all to b", func() bool { return call(t, client, 20)["b"] == 20 })
	close(stop)
	wg.Wait()
	// echo-a is unpublished once grpc-go has acknowledged the new routes.
	waitFor(t, "echo-a removed", func() bool {
		srv.snapMu.Lock()
		ns := srv.snaps[nodeID]
		srv.snapMu.Unlock()
		ns.mu.Lock()
		defer ns.mu.Unlock()
		return ns.snap == ns.target
	})
	if got := call(t, client, 20); got["b"] != 20 {
		t.Errorf("after removal: %v", got)
	}
}
