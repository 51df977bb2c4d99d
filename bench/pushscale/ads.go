package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// Type URLs of the four resource types.
const (
	typeCDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	typeLDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
	typeRDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	typeEDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
)

// simClient is one simulated proxy: a state-of-the-world ADS client that
// subscribes like a sidecar, ACKs everything and notes when a route config
// carrying a marker header value arrives.
type simClient struct {
	id     string
	doc    map[string]any // Dataplane document sent as node metadata
	marker string         // header whose value names the push

	mu        sync.Mutex
	seen      map[string]time.Time // marker value → first arrival
	bytes     atomic.Int64         // response bytes received
	initial   chan struct{}        // closed after the first RDS and EDS answers
	initOnce  sync.Once
	haveTypes map[string]bool
}

func newSimClient(id string, doc map[string]any, marker string) *simClient {
	return &simClient{id: id, doc: doc, marker: marker, seen: map[string]time.Time{}, initial: make(chan struct{}), haveTypes: map[string]bool{}}
}

// run holds the stream open until ctx ends, reconnecting when it breaks.
func (c *simClient) run(ctx context.Context, conn *grpc.ClientConn) {
	for ctx.Err() == nil {
		c.stream(ctx, conn)
		if ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

func (c *simClient) stream(ctx context.Context, conn *grpc.ClientConn) error {
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	meta, err := structpb.NewStruct(map[string]any{"trellis.dev/dataplane": c.doc})
	if err != nil {
		return err
	}
	node := &corev3.Node{Id: c.id, Cluster: "default", Metadata: meta}
	var sendMu sync.Mutex
	first := true
	send := func(r *discoveryv3.DiscoveryRequest) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		if first { // as trellis proxy does (internal/xds/ads): the node on a stream's first request only
			r.Node, first = node, false
		}
		return st.Send(r)
	}
	if err := send(&discoveryv3.DiscoveryRequest{TypeUrl: typeCDS}); err != nil {
		return err
	}
	if err := send(&discoveryv3.DiscoveryRequest{TypeUrl: typeLDS}); err != nil {
		return err
	}
	names := map[string][]string{}
	for {
		resp, err := st.Recv()
		if err != nil {
			return err
		}
		now := time.Now()
		c.bytes.Add(int64(proto.Size(resp)))
		var sub []string // names to subscribe to for the dependent type
		var subType string
		switch resp.TypeUrl {
		case typeCDS:
			subType = typeEDS
			for _, a := range resp.Resources {
				var cl clusterv3.Cluster
				if a.UnmarshalTo(&cl) == nil && cl.GetEdsClusterConfig() != nil {
					n := cl.GetEdsClusterConfig().GetServiceName()
					if n == "" {
						n = cl.Name
					}
					sub = append(sub, n)
				}
			}
		case typeLDS:
			subType = typeRDS
			for _, a := range resp.Resources {
				var l listenerv3.Listener
				if a.UnmarshalTo(&l) != nil {
					continue
				}
				for _, fc := range l.FilterChains {
					for _, f := range fc.Filters {
						var h hcmv3.HttpConnectionManager
						if f.GetTypedConfig() != nil && f.GetTypedConfig().UnmarshalTo(&h) == nil && h.GetRds() != nil {
							sub = append(sub, h.GetRds().RouteConfigName)
						}
					}
				}
			}
		case typeRDS:
			for _, a := range resp.Resources {
				var rc routev3.RouteConfiguration
				if a.UnmarshalTo(&rc) == nil {
					c.note(&rc, now)
				}
			}
		}
		c.mu.Lock()
		c.haveTypes[resp.TypeUrl] = true
		if c.haveTypes[typeRDS] && c.haveTypes[typeEDS] {
			c.initOnce.Do(func() { close(c.initial) })
		}
		c.mu.Unlock()
		if err := send(&discoveryv3.DiscoveryRequest{TypeUrl: resp.TypeUrl, VersionInfo: resp.VersionInfo,
			ResponseNonce: resp.Nonce, ResourceNames: names[resp.TypeUrl]}); err != nil {
			return err
		}
		if subType != "" && strings.Join(sub, ",") != strings.Join(names[subType], ",") {
			names[subType] = sub
			if err := send(&discoveryv3.DiscoveryRequest{TypeUrl: subType, ResourceNames: sub}); err != nil {
				return err
			}
		}
	}
}

// note records the marker values a route configuration carries.
func (c *simClient) note(rc *routev3.RouteConfiguration, now time.Time) {
	for _, vh := range rc.VirtualHosts {
		for _, r := range vh.Routes {
			for _, h := range r.RequestHeadersToAdd {
				if h.GetHeader().GetKey() == c.marker {
					v := h.GetHeader().GetValue()
					c.mu.Lock()
					if _, ok := c.seen[v]; !ok {
						c.seen[v] = now
					}
					c.mu.Unlock()
				}
			}
		}
	}
}

// arrival returns when the push named v arrived.
func (c *simClient) arrival(v string) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.seen[v]
	return t, ok
}

func (c *simClient) String() string { return fmt.Sprintf("client %s", c.id) }
