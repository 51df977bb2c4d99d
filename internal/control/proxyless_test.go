package control

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/xds"

	"github.com/trellis-mesh/trellis/internal/control/grpcbootstrap"
	"github.com/trellis-mesh/trellis/internal/store/bolt"
)

// plBackend is a real gRPC server (the health service) a proxyless client
// reaches directly.
func plBackend(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	healthpb.RegisterHealthServer(g, health.NewServer())
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	return ln.Addr().String()
}

// plControl runs a control plane with a bolt store on free ports.
func plControl(t *testing.T) *Control {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "trellis.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, err := New(Options{Store: st, APIAddr: "127.0.0.1:0", XDSAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("control plane: %v", err)
		}
	})
	<-c.Ready()
	return c
}

func plApply(t *testing.T, c *Control, docs string) {
	t.Helper()
	if _, err := c.mgr.Apply(t.Context(), strings.NewReader(docs)); err != nil {
		t.Fatal(err)
	}
}

func plRoute(v1, v2 int) string {
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: echo-canary}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 9000}]
  rules:
  - backendRefs:
    - {name: echo-v1, port: 9000, weight: %d}
    - {name: echo-v2, port: 9000, weight: %d}
`, v1, v2)
}

// TestProxylessGRPCAgainstControlPlane dials xds:///echo with grpc-go's own
// xDS resolver against a real control plane that was configured through
// its manager as a user's apply would: endpoints come from Dataplanes,
// the split from a GRPCRoute, and a change of weights reaches the client.
func TestProxylessGRPCAgainstControlPlane(t *testing.T) {
	a, b := plBackend(t), plBackend(t)
	c := plControl(t)
	var docs strings.Builder
	docs.WriteString(`apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: echo}
spec: {selector: {app: echo}, ports: [{port: 9000, protocol: grpc}]}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: echo-v1}
spec: {selector: {app: echo, version: v1}, ports: [{port: 9000, protocol: grpc}]}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: echo-v2}
spec: {selector: {app: echo, version: v2}, ports: [{port: 9000, protocol: grpc}]}
`)
	for i, addr := range []string{a, b} {
		_, port, _ := net.SplitHostPort(addr)
		fmt.Fprintf(&docs, `---
apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: echo-%d, labels: {app: echo, version: v%d}}
spec:
  address: 127.0.0.1
  inbound: [{port: %s, servicePort: 9000, appPort: %s}]
`, i+1, i+1, port, port)
	}
	docs.WriteString("---\n" + plRoute(80, 20))
	plApply(t, c, docs.String())

	_, xdsAddr := c.Addrs()
	bs, err := grpcbootstrap.Generate(grpcbootstrap.Options{ServerURI: xdsAddr, Service: "client"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := xds.NewXDSResolverWithConfigForTesting(bs)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///echo", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(res))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)
	call := func() string {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		var p peer.Peer
		if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p), grpc.WaitForReady(true)); err != nil {
			t.Fatalf("call through xds:///echo: %v", err)
		}
		return p.Addr.String()
	}
	counts := map[string]int{}
	const n = 400
	for range n {
		counts[call()]++
	}
	// 80/20 over 400 calls: the standard deviation of the v1 count is 8,
	// so [280, 360] is five of them either side.
	if counts[a] < 280 || counts[a] > 360 || counts[a]+counts[b] != n {
		t.Fatalf("v1 %d, v2 %d of %d calls; want about 320/80", counts[a], counts[b], n)
	}

	plApply(t, c, plRoute(0, 100))
	deadline := time.Now().Add(10 * time.Second)
	for streak := 0; streak < 50; {
		if time.Now().After(deadline) {
			t.Fatal("the client never moved all calls to v2")
		}
		if call() == b {
			streak++
		} else {
			streak = 0
		}
	}
}
