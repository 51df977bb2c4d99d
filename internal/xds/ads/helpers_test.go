package ads_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/trellis-mesh/trellis/internal/proxy"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
	"github.com/trellis-mesh/trellis/internal/xds/ads"
)

// controlPlane is a real go-control-plane ADS server on 127.0.0.1:0 that
// records every request it receives.
type controlPlane struct {
	t     *testing.T
	addr  string
	cache cachev3.SnapshotCache
	srv   *grpc.Server

	mu   sync.Mutex
	reqs []*discoveryv3.DiscoveryRequest
}

// startControlPlane starts a control plane on addr ("127.0.0.1:0" for a
// fresh port).
func startControlPlane(t *testing.T, addr string) *controlPlane {
	t.Helper()
	cp := &controlPlane{t: t, cache: cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)}
	cb := serverv3.CallbackFuncs{StreamRequestFunc: func(_ int64, r *discoveryv3.DiscoveryRequest) error {
		cp.mu.Lock()
		cp.reqs = append(cp.reqs, proto.Clone(r).(*discoveryv3.DiscoveryRequest))
		cp.mu.Unlock()
		return nil
	}}
	var ln net.Listener
	var err error
	// A restarted control plane reuses its predecessor's port, which may
	// take a moment to be released.
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err = net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	cp.addr = ln.Addr().String()
	cp.srv = grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(cp.srv, serverv3.NewServer(context.Background(), cp.cache, cb))
	go func() { _ = cp.srv.Serve(ln) }()
	t.Cleanup(cp.srv.Stop)
	return cp
}

// set publishes a snapshot for node.
func (cp *controlPlane) set(node string, s *cachev3.Snapshot) {
	cp.t.Helper()
	if err := s.Consistent(); err != nil {
		cp.t.Fatal(err)
	}
	if err := cp.cache.SetSnapshot(context.Background(), node, s); err != nil {
		cp.t.Fatal(err)
	}
}

// waitRequest waits for a request that match accepts and returns it.
func (cp *controlPlane) waitRequest(what string, match func(*discoveryv3.DiscoveryRequest) bool) *discoveryv3.DiscoveryRequest {
	cp.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		cp.mu.Lock()
		for _, r := range cp.reqs {
			if match(r) {
				cp.mu.Unlock()
				return r
			}
		}
		cp.mu.Unlock()
		if time.Now().After(deadline) {
			cp.t.Fatalf("control plane never received %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ack matches an ACK of version for typeURL.
func ack(typeURL, version string) func(*discoveryv3.DiscoveryRequest) bool {
	return func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == typeURL && r.GetVersionInfo() == version && r.GetResponseNonce() != "" && r.GetErrorDetail() == nil
	}
}

// nack matches a NACK for typeURL whose message contains text.
func nack(typeURL, text string) func(*discoveryv3.DiscoveryRequest) bool {
	return func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == typeURL && strings.Contains(r.GetErrorDetail().GetMessage(), text)
	}
}

// upstream is a real HTTP server that answers with its name; /block
// waits until release is closed.
type upstream struct {
	*httptest.Server
	release chan struct{}
}

func startUpstream(t *testing.T, name string) *upstream {
	u := &upstream{release: make(chan struct{})}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			<-u.release
		}
		fmt.Fprint(w, name)
	}))
	t.Cleanup(func() {
		select {
		case <-u.release:
		default:
			close(u.release)
		}
		u.Close()
	})
	return u
}

func (u *upstream) hostPort() (string, uint32) {
	a := u.Listener.Addr().(*net.TCPAddr)
	return a.IP.String(), uint32(a.Port)
}

// mesh describes a snapshot: one listener "edge" whose HCM takes route
// configuration "local" over RDS; "local" sends everything to the EDS
// cluster "web", whose endpoints are the upstream.
type mesh struct {
	version  string
	upstream *upstream
	// mutate changes the resources before the snapshot is built.
	mutate func(*resources)
}

type resources struct {
	listener *listenerv3.Listener
	route    *routev3.RouteConfiguration
	cluster  *clusterv3.Cluster
	cla      *endpointv3.ClusterLoadAssignment
	extra    []types.Resource // more clusters
}

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (m mesh) snapshot(t testing.TB) *cachev3.Snapshot {
	ads := &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}, ResourceApiVersion: corev3.ApiVersion_V3}
	h := &hcmv3.HttpConnectionManager{
		StatPrefix:     "edge",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: ads, RouteConfigName: "local"}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})}}},
	}
	host, port := m.upstream.hostPort()
	r := &resources{
		listener: &listenerv3.Listener{
			Name: "edge",
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 0}}}},
			FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager",
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, h)}}}}},
		},
		route: &routev3.RouteConfiguration{Name: "local", VirtualHosts: []*routev3.VirtualHost{{
			Name: "all", Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "web"}}},
			}},
		}}},
		cluster: &clusterv3.Cluster{
			Name:                 "web",
			ConnectTimeout:       durationpb.New(time.Second),
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads, ServiceName: "web-svc"},
			LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
			OutlierDetection:     &clusterv3.OutlierDetection{},
		},
		cla: &endpointv3.ClusterLoadAssignment{ClusterName: "web-svc", Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}},
			}}}},
		}}},
	}
	if m.mutate != nil {
		m.mutate(r)
	}
	s, err := cachev3.NewSnapshot(m.version, map[resource.Type][]types.Resource{
		resource.ListenerType: {r.listener},
		resource.RouteType:    {r.route},
		resource.ClusterType:  append([]types.Resource{r.cluster}, r.extra...),
		resource.EndpointType: {r.cla},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fastBackoff reconnects quickly so tests do not wait.
var fastBackoff = ads.Backoff{Base: 20 * time.Millisecond, Max: 200 * time.Millisecond}

// runProxy starts a real proxy (admin on 127.0.0.1:0) fed by an ADS client
// for node; both stop in t.Cleanup.
func runProxy(t *testing.T, addr string, node *corev3.Node, cachePath string) *proxy.Proxy {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	p := proxy.New(proxy.Options{Logger: log, DrainTimeout: 5 * time.Second})
	if err := p.StartAdmin("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	c, err := ads.New(ads.Options{
		Address: addr, Node: node, Proxy: p, Backoff: fastBackoff, CachePath: cachePath,
		Metrics: metrics.NewXDS(p.Metrics()), Logger: log,
		Base: adminBootstrap(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		p.Shutdown(context.Background())
	})
	return p
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// get fetches path through the proxy's "edge" listener; it returns the
// body, or "" and the error.
func get(p *proxy.Proxy, path string) (string, error) {
	addr := p.ListenerAddrs()["edge"]
	if addr == "" {
		return "", fmt.Errorf("no edge listener yet")
	}
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return string(b), err
}

// waitBody polls the proxy until path answers want.
func waitBody(t *testing.T, p *proxy.Proxy, path, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var got string
	var err error
	for time.Now().Before(deadline) {
		if got, err = get(p, path); err == nil && got == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("GET %s through the proxy: got %q, %v; want %q", path, got, err, want)
}
