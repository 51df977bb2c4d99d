package control

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
	"sigs.k8s.io/yaml"
)

// waitTimeout bounds every wait for something that must happen.
const waitTimeout = 15 * time.Second

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// adsClient is a raw state-of-the-world ADS client that behaves like a
// proxy: it ACKs every response (or NACKs one when told to) and subscribes
// to the load assignments and route configurations its clusters and
// listeners name.
type adsClient struct {
	t      *testing.T
	node   *corev3.Node
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	cancel context.CancelFunc
	done   chan struct{} // closed when the receive loop ends

	// follow: subscribe to what clusters and listeners name, as an Envoy
	// does (a proxyless client names what it wants itself).
	follow bool

	sendMu sync.Mutex
	first  bool

	mu    sync.Mutex
	names map[string][]string // subscribed names per type (nil: wildcard)
	last  map[string]*discoveryv3.DiscoveryResponse
	count map[string]int    // responses received per type
	nack  map[string]string // NACK the next response of the type with this error
}

// dataplaneNode is the node a trellis proxy sends for the Dataplane doc.
func dataplaneNode(t *testing.T, id, mesh, doc string) *corev3.Node {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatal(err)
	}
	// structpb wants JSON types.
	js, _ := json.Marshal(m)
	var generic map[string]any
	json.Unmarshal(js, &generic)
	meta, err := structpb.NewStruct(map[string]any{metaDataplane: generic})
	if err != nil {
		t.Fatal(err)
	}
	return &corev3.Node{Id: id, Cluster: mesh, Metadata: meta}
}

func proxylessNode(t *testing.T, id, mesh string) *corev3.Node {
	t.Helper()
	meta, err := structpb.NewStruct(map[string]any{metaProxyless: true})
	if err != nil {
		t.Fatal(err)
	}
	return &corev3.Node{Id: id, Cluster: mesh, Metadata: meta}
}

// connect opens an ADS stream to addr for node. With wildcard it asks for
// every cluster and listener and follows them to their load assignments and
// route configurations, as a proxy does; without, the test makes the
// requests (request), as a proxyless client does.
func connect(t *testing.T, addr string, node *corev3.Node, wildcard bool) *adsClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		cancel()
		cc.Close()
		t.Fatal(err)
	}
	c := &adsClient{
		t: t, node: node, stream: stream, cancel: cancel, done: make(chan struct{}), first: true, follow: wildcard,
		names: map[string][]string{}, last: map[string]*discoveryv3.DiscoveryResponse{},
		count: map[string]int{}, nack: map[string]string{},
	}
	go c.loop()
	t.Cleanup(func() { c.close(); cc.Close() })
	if wildcard {
		c.send(&discoveryv3.DiscoveryRequest{TypeUrl: resource.ClusterType})
		c.send(&discoveryv3.DiscoveryRequest{TypeUrl: resource.ListenerType})
	}
	return c
}

// close ends the stream and waits for the receive loop.
func (c *adsClient) close() {
	c.cancel()
	<-c.done
}

func (c *adsClient) send(req *discoveryv3.DiscoveryRequest) {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if c.first {
		req.Node, c.first = c.node, false
	}
	// A failed send shows as a closed stream in the receive loop.
	_ = c.stream.Send(req)
}

// request subscribes to names of typeURL.
func (c *adsClient) request(typeURL string, names ...string) {
	c.mu.Lock()
	c.names[typeURL] = names
	c.mu.Unlock()
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: typeURL, ResourceNames: names})
}

// nackNext makes the client reject the next response of typeURL.
func (c *adsClient) nackNext(typeURL, msg string) {
	c.mu.Lock()
	c.nack[typeURL] = msg
	c.mu.Unlock()
}

func (c *adsClient) loop() {
	defer close(c.done)
	for {
		resp, err := c.stream.Recv()
		if err != nil {
			return
		}
		typ := resp.GetTypeUrl()
		c.mu.Lock()
		c.count[typ]++
		req := &discoveryv3.DiscoveryRequest{TypeUrl: typ, ResponseNonce: resp.GetNonce(), VersionInfo: resp.GetVersionInfo(), ResourceNames: c.names[typ]}
		if msg, ok := c.nack[typ]; ok {
			delete(c.nack, typ)
			if prev := c.last[typ]; prev != nil {
				req.VersionInfo = prev.GetVersionInfo()
			} else {
				req.VersionInfo = ""
			}
			req.ErrorDetail = &statuspb.Status{Code: 3, Message: msg}
			c.mu.Unlock()
			c.send(req)
			continue
		}
		c.last[typ] = resp
		var sub *discoveryv3.DiscoveryRequest
		switch {
		case c.follow && typ == resource.ClusterType:
			sub = c.subscribe(resource.EndpointType, edsNames(resp))
		case c.follow && typ == resource.ListenerType:
			sub = c.subscribe(resource.RouteType, rdsNames(resp))
		}
		c.mu.Unlock()
		c.send(req)
		if sub != nil {
			c.send(sub)
		}
	}
}

// subscribe updates the subscription of typ to names and returns the
// request that says so, or nil when it did not change. c.mu is held.
func (c *adsClient) subscribe(typ string, names []string) *discoveryv3.DiscoveryRequest {
	if _, ok := c.names[typ]; ok && slices.Equal(c.names[typ], names) {
		return nil
	}
	c.names[typ] = names
	req := &discoveryv3.DiscoveryRequest{TypeUrl: typ, ResourceNames: names}
	if prev := c.last[typ]; prev != nil {
		req.VersionInfo, req.ResponseNonce = prev.GetVersionInfo(), prev.GetNonce()
	}
	return req
}

func edsNames(resp *discoveryv3.DiscoveryResponse) []string {
	var out []string
	for _, a := range resp.GetResources() {
		var cl clusterv3.Cluster
		if a.UnmarshalTo(&cl) == nil && cl.GetType() == clusterv3.Cluster_EDS {
			out = append(out, cmpOr(cl.GetEdsClusterConfig().GetServiceName(), cl.GetName()))
		}
	}
	slices.Sort(out)
	return out
}

func rdsNames(resp *discoveryv3.DiscoveryResponse) []string {
	var out []string
	for _, a := range resp.GetResources() {
		var l listenerv3.Listener
		if a.UnmarshalTo(&l) != nil {
			continue
		}
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				var h hcmv3.HttpConnectionManager
				if f.GetTypedConfig().UnmarshalTo(&h) == nil && h.GetRds() != nil {
					out = append(out, h.GetRds().GetRouteConfigName())
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// responses returns how many responses of typ arrived.
func (c *adsClient) responses(typ string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count[typ]
}

// version returns the version of the last accepted response of typ.
func (c *adsClient) version(typ string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last[typ].GetVersionInfo()
}

// resources returns the names of the resources of the last accepted
// response of typ, sorted.
func (c *adsClient) resources(typ string) []string {
	c.mu.Lock()
	resp := c.last[typ]
	c.mu.Unlock()
	var out []string
	for _, a := range resp.GetResources() {
		var name string
		switch typ {
		case resource.ClusterType:
			var m clusterv3.Cluster
			if a.UnmarshalTo(&m) == nil {
				name = m.GetName()
			}
		case resource.ListenerType:
			var m listenerv3.Listener
			if a.UnmarshalTo(&m) == nil {
				name = m.GetName()
			}
		case resource.EndpointType:
			var m endpointv3.ClusterLoadAssignment
			if a.UnmarshalTo(&m) == nil {
				name = m.GetClusterName()
			}
		case resource.RouteType:
			var m routev3.RouteConfiguration
			if a.UnmarshalTo(&m) == nil {
				name = m.GetName()
			}
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// endpoints returns the "address:port" endpoints of one cluster in the last
// accepted EDS response.
func (c *adsClient) endpoints(cluster string) []string {
	c.mu.Lock()
	resp := c.last[resource.EndpointType]
	c.mu.Unlock()
	var out []string
	for _, a := range resp.GetResources() {
		var cla endpointv3.ClusterLoadAssignment
		if a.UnmarshalTo(&cla) != nil || cla.GetClusterName() != cluster {
			continue
		}
		for _, le := range cla.GetEndpoints() {
			for _, lb := range le.GetLbEndpoints() {
				sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
				out = append(out, sa.GetAddress()+":"+strconv.Itoa(int(sa.GetPortValue())))
			}
		}
	}
	slices.Sort(out)
	return out
}
