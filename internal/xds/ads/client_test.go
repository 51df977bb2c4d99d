package ads_test

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptrace"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/trellis-mesh/trellis/internal/proxy"
	"github.com/trellis-mesh/trellis/internal/xds/ads"
)

const dataplaneYAML = `
apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata:
  name: web-1
  namespace: shop
  labels: {trellis.dev/mesh: prod, app: web}
spec:
  address: 127.0.0.1
  inbound: [{port: 8080, appPort: 9090}]
  locality: {region: eu, zone: eu-1a}
`

func adminBootstrap(t testing.TB) *bootstrapv3.Bootstrap {
	return &bootstrapv3.Bootstrap{Admin: &bootstrapv3.Admin{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
		SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 0}}}}}}
}

func dataplaneNode(t *testing.T) *corev3.Node {
	t.Helper()
	n, err := ads.ParseDataplane([]byte(dataplaneYAML))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func ready(t *testing.T, p *proxy.Proxy) int {
	t.Helper()
	resp, err := http.Get("http://" + p.AdminAddr() + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestTrafficUpdatesAndNodeIdentity: the proxy registers with its Dataplane
// in node metadata, is not ready before its first xDS configuration, serves
// it, ACKs every type, and moves traffic when a new version names another
// upstream, while an in-flight request and a kept-alive connection survive.
func TestTrafficUpdatesAndNodeIdentity(t *testing.T) {
	a, b := startUpstream(t, "A"), startUpstream(t, "B")
	cp := startControlPlane(t, "127.0.0.1:0")
	p := runProxy(t, cp.addr, dataplaneNode(t), "")

	first := cp.waitRequest("a request with the node", func(r *discoveryv3.DiscoveryRequest) bool { return r.GetNode() != nil })
	if got := first.GetNode().GetId(); got != "shop/web-1" {
		t.Errorf("node.id = %q, want shop/web-1", got)
	}
	if got := first.GetNode().GetCluster(); got != "prod" {
		t.Errorf("node.cluster = %q, want prod", got)
	}
	dp := first.GetNode().GetMetadata().GetFields()[ads.DataplaneMetadataKey].GetStructValue()
	if dp.GetFields()["spec"].GetStructValue().GetFields()["address"].GetStringValue() != "127.0.0.1" ||
		dp.GetFields()["kind"].GetStringValue() != "Dataplane" {
		t.Errorf("node metadata does not carry the Dataplane document: %v", first.GetNode().GetMetadata())
	}
	if first.GetNode().GetLocality().GetZone() != "eu-1a" {
		t.Errorf("node.locality = %v", first.GetNode().GetLocality())
	}
	if code := ready(t, p); code != http.StatusServiceUnavailable {
		t.Errorf("/ready before any configuration = %d, want 503", code)
	}

	cp.set("shop/web-1", mesh{version: "1", upstream: a}.snapshot(t))
	waitBody(t, p, "/", "A")
	if code := ready(t, p); code != http.StatusOK {
		t.Errorf("/ready after the first configuration = %d, want 200", code)
	}
	for _, u := range []string{ads.ListenerType, ads.RouteType, ads.ClusterType, ads.EndpointType} {
		cp.waitRequest("ACK of "+u+" version 1", ack(u, "1"))
	}
	if got := updates(t, p, "eds", "ack"); got < 1 {
		t.Errorf("trellis_xds_updates_total{type=eds,result=ack} = %v", got)
	}

	// A request in flight and an idle kept-alive connection, both opened
	// under version 1.
	tr := &http.Transport{MaxConnsPerHost: 1}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	edge := "http://" + p.ListenerAddrs()["edge"]
	if resp, err := hc.Get(edge + "/"); err != nil {
		t.Fatal(err)
	} else {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	inflight, err := http.Get(edge + "/block")
	if err != nil {
		t.Fatal(err)
	}
	defer inflight.Body.Close()

	cp.set("shop/web-1", mesh{version: "2", upstream: b}.snapshot(t))
	waitBody(t, p, "/", "B")
	cp.waitRequest("ACK of EDS version 2", ack(ads.EndpointType, "2"))

	close(a.release)
	body, err := io.ReadAll(bufio.NewReader(inflight.Body))
	if err != nil || string(body) != "A" {
		t.Errorf("in-flight request across the update: %q, %v; want A", body, err)
	}
	reused := false
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
	req, _ := http.NewRequest("GET", edge+"/", nil)
	resp, err := hc.Do(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !reused || string(got) != "B" {
		t.Errorf("kept-alive connection after the update: reused=%v body=%q; want reused, B", reused, got)
	}
}

// TestNACKKeepsServing: a resource using an unsupported field, and a set the
// proxy cannot build, are NACKed with the field path and the previous
// version, and traffic keeps its last good configuration.
func TestNACKKeepsServing(t *testing.T) {
	a, b := startUpstream(t, "A"), startUpstream(t, "B")
	cp := startControlPlane(t, "127.0.0.1:0")
	p := runProxy(t, cp.addr, ads.StaticNode("bench/1", ""), "")
	cp.set("bench/1", mesh{version: "1", upstream: a}.snapshot(t))
	waitBody(t, p, "/", "A")

	// An unsupported field in the RouteConfiguration: rejected on its own.
	cp.set("bench/1", mesh{version: "2", upstream: b, mutate: func(r *resources) {
		r.route.VirtualHosts[0].RequireTls = 1
	}}.snapshot(t))
	n := cp.waitRequest("a NACK of RDS", nack(ads.RouteType, `route_configuration "local": virtual_hosts[0].require_tls: not supported`))
	if n.GetVersionInfo() != "1" {
		t.Errorf("NACK version_info = %q, want the previous version 1", n.GetVersionInfo())
	}
	// The other types of version 2 are valid and consistent with the
	// version 1 routes the proxy keeps, so they apply: endpoints move to B.
	waitBody(t, p, "/", "B")
	if got := updates(t, p, "rds", "nack"); got < 1 {
		t.Errorf("trellis_xds_updates_total{type=rds,result=nack} = %v", got)
	}

	// A cluster type the proxy does not run: passes the field check, fails
	// the build, and is NACKed naming the cluster. The same update moves
	// "web" to endpoints on A, which must not take effect.
	cp.set("bench/1", mesh{version: "3", upstream: a, mutate: func(r *resources) {
		r.cluster.EdsClusterConfig.ServiceName = "web-svc-3"
		r.cla.ClusterName = "web-svc-3"
		r.extra = []types.Resource{&clusterv3.Cluster{Name: "odd", ConnectTimeout: durationpb.New(time.Second),
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}, LbPolicy: clusterv3.Cluster_CLUSTER_PROVIDED}}
	}}.snapshot(t))
	n = cp.waitRequest("a NACK of CDS", nack(ads.ClusterType, `cluster "odd": `))
	if !strings.Contains(n.GetErrorDetail().GetMessage(), "ORIGINAL_DST") {
		t.Errorf("NACK message %q does not say what is wrong", n.GetErrorDetail().GetMessage())
	}
	if n.GetVersionInfo() != "2" {
		t.Errorf("CDS NACK version_info = %q, want the last ACKed 2", n.GetVersionInfo())
	}
	for range 5 {
		if got, err := get(p, "/"); err != nil || got != "B" {
			t.Fatalf("after a NACK: %q, %v; want the last good configuration (B)", got, err)
		}
	}
}

// TestStaticStability: with the control plane gone the proxy keeps
// serving; a control plane back on the same address resyncs it.
func TestStaticStability(t *testing.T) {
	a, b := startUpstream(t, "A"), startUpstream(t, "B")
	cp := startControlPlane(t, "127.0.0.1:0")
	p := runProxy(t, cp.addr, ads.StaticNode("n1", "m"), "")
	cp.set("n1", mesh{version: "1", upstream: a}.snapshot(t))
	waitBody(t, p, "/", "A")
	waitGauge(t, p, 1)

	cp.srv.Stop()
	waitGauge(t, p, 0)
	for range 10 {
		if got, err := get(p, "/"); err != nil || got != "A" {
			t.Fatalf("with the control plane down: %q, %v; want A", got, err)
		}
	}

	cp2 := startControlPlane(t, cp.addr)
	cp2.set("n1", mesh{version: "7", upstream: b}.snapshot(t))
	waitBody(t, p, "/", "B")
	waitGauge(t, p, 1)
	// The proxy told the new control plane what it ran.
	cp2.waitRequest("a resubscription with the last ACKed version", func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == ads.ClusterType && r.GetVersionInfo() == "1" && r.GetResponseNonce() == ""
	})
}

// TestCacheServesBeforeTheControlPlane: a restarted proxy with a cache file
// serves its last configuration while no control plane answers.
func TestCacheServesBeforeTheControlPlane(t *testing.T) {
	a := startUpstream(t, "A")
	cache := filepath.Join(t.TempDir(), "xds.json")
	cp := startControlPlane(t, "127.0.0.1:0")
	p := runProxy(t, cp.addr, ads.StaticNode("n1", ""), cache)
	cp.set("n1", mesh{version: "1", upstream: a}.snapshot(t))
	waitBody(t, p, "/", "A")
	cp.waitRequest("ACK of LDS", ack(ads.ListenerType, "1"))
	cp.srv.Stop()

	p2 := runProxy(t, cp.addr, ads.StaticNode("n1", ""), cache)
	waitBody(t, p2, "/", "A")
	if code := ready(t, p2); code != http.StatusOK {
		t.Errorf("/ready with the cached configuration = %d, want 200", code)
	}
}

func waitGauge(t *testing.T, p *proxy.Proxy, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := gatherValue(t, p, "trellis_xds_connected")
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("trellis_xds_connected = %v, want %v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// gatherValue returns the value of the metric name whose labels include
// labels (name=value pairs), or -1 if there is none.
func gatherValue(t *testing.T, p *proxy.Proxy, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := p.Metrics().Prom.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

func updates(t *testing.T, p *proxy.Proxy, typ, result string) float64 {
	return gatherValue(t, p, "trellis_xds_updates_total", "type", typ, "result", result)
}
