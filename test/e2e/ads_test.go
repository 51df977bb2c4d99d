package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

// The resources an in-test control plane serves: listener "edge" takes its
// routes over RDS; route configuration "local" sends everything to the EDS
// cluster "web"; its endpoints are one echo server.
const (
	adsListener = `
name: edge
address: {socket_address: {address: 127.0.0.1, port_value: 0}}
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: edge
      rds: {config_source: {ads: {}, resource_api_version: V3}, route_config_name: local}
      http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
`
	adsRoute = `
name: local
virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: web}}]}]
`
	adsCluster = `
name: web
connect_timeout: 1s
type: EDS
eds_cluster_config: {eds_config: {ads: {}, resource_api_version: V3}}
outlier_detection: {consecutive_5xx: 5}
`
	adsEndpoints = `
cluster_name: web
endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %s}}}}]}]
`
	adsDataplane = `
apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: web-1, namespace: shop, labels: {trellis.dev/mesh: e2e}}
spec: {address: 127.0.0.1}
`
)

// xdsServer is a go-control-plane ADS server in the test process.
type xdsServer struct {
	addr  string
	cache cachev3.SnapshotCache
	srv   *grpc.Server
	mu    sync.Mutex
	nodes []string // node ids seen
}

func startXDSServer(t *testing.T) *xdsServer {
	t.Helper()
	x := &xdsServer{cache: cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)}
	cb := serverv3.CallbackFuncs{StreamRequestFunc: func(_ int64, r *discoveryv3.DiscoveryRequest) error {
		x.mu.Lock()
		x.nodes = append(x.nodes, r.GetNode().GetId()+"@"+r.GetNode().GetCluster())
		x.mu.Unlock()
		return nil
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	x.addr = ln.Addr().String()
	x.srv = grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(x.srv, serverv3.NewServer(context.Background(), x.cache, cb))
	go func() { _ = x.srv.Serve(ln) }()
	t.Cleanup(x.srv.Stop)
	return x
}

func (x *xdsServer) publish(t *testing.T, node, version, echoPort string) {
	t.Helper()
	dec := func(doc string, m proto.Message) types.Resource {
		if err := decode.Unmarshal([]byte(doc), m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	s, err := cachev3.NewSnapshot(version, map[resource.Type][]types.Resource{
		resource.ListenerType: {dec(adsListener, &listenerv3.Listener{})},
		resource.RouteType:    {dec(adsRoute, &routev3.RouteConfiguration{})},
		resource.ClusterType:  {dec(adsCluster, &clusterv3.Cluster{})},
		resource.EndpointType: {dec(fmt.Sprintf(adsEndpoints, echoPort), &endpointv3.ClusterLoadAssignment{})},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Consistent(); err != nil {
		t.Fatal(err)
	}
	if err := x.cache.SetSnapshot(context.Background(), node, s); err != nil {
		t.Fatal(err)
	}
}

func statusOf(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitEcho polls url until the echo server named name answers.
func waitEcho(t *testing.T, url, name string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	want := fmt.Sprintf(`"name":%q`, name)
	for {
		resp, err := http.Get(url)
		if err == nil {
			if body := readAll(resp); resp.StatusCode == 200 && strings.Contains(body, want) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered from echo %q (last error %v)", url, name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readAll(resp *http.Response) string {
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestProxyFromControlPlane runs `trellis proxy --control-plane` against a
// real ADS server: it registers with its Dataplane, is not ready until the
// first configuration, serves it, follows an update, and keeps serving
// when the control plane goes away; SIGTERM still exits 0.
func TestProxyFromControlPlane(t *testing.T) {
	one := start(t, "echo", "--listen", "127.0.0.1:0", "--name", "one").waitLine(`listening on http://127\.0\.0\.1:(\d+)`)[1]
	two := start(t, "echo", "--listen", "127.0.0.1:0", "--name", "two").waitLine(`listening on http://127\.0\.0\.1:(\d+)`)[1]
	x := startXDSServer(t)
	dp := filepath.Join(t.TempDir(), "dataplane.yaml")
	if err := os.WriteFile(dp, []byte(adsDataplane), 0o644); err != nil {
		t.Fatal(err)
	}

	p := start(t, "proxy", "--control-plane", x.addr, "--dataplane", dp, "--admin-address", "127.0.0.1:0", "--drain-timeout", "5s")
	admin := "http://" + p.waitLine(`admin listening on (\S+)`)[1]
	if code := statusOf(t, admin+"/ready"); code != http.StatusServiceUnavailable {
		t.Errorf("/ready before the control plane answered = %d, want 503", code)
	}

	x.publish(t, "shop/web-1", "1", one)
	edge := "http://" + p.waitLine(`listener edge listening on (\S+)`)[1]
	waitEcho(t, edge+"/", "one")
	if code := statusOf(t, admin+"/ready"); code != http.StatusOK {
		t.Errorf("/ready after the first configuration = %d, want 200", code)
	}
	x.mu.Lock()
	seen := strings.Join(x.nodes, " ")
	x.mu.Unlock()
	if !strings.Contains(seen, "shop/web-1@e2e") {
		t.Errorf("the control plane saw nodes %q, want shop/web-1 in mesh e2e", seen)
	}
	resp, err := http.Get(admin + "/config_dump")
	if err != nil {
		t.Fatal(err)
	}
	if dump := readAll(resp); !strings.Contains(dump, `"route_config"`) || !strings.Contains(dump, `"type":"STATIC"`) {
		t.Errorf("config_dump does not show the xDS configuration inlined:\n%s", dump)
	}

	x.publish(t, "shop/web-1", "2", two)
	waitEcho(t, edge+"/", "two")

	x.srv.Stop()
	for range 10 {
		waitEcho(t, edge+"/", "two")
	}
	p.waitStderr("serving the last configuration")
}
