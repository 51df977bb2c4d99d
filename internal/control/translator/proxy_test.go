package translator

import (
	"io"
	"log/slog"
	"slices"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
	"github.com/trellis-mesh/trellis/internal/proxy"
	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

func slicesSort(s []string) { slices.Sort(s) }

// newObject returns an empty object of kind, or nil.
func newObject(kind string) v1alpha1.Object {
	switch kind {
	case "Mesh":
		return &v1alpha1.Mesh{}
	case "Service":
		return &v1alpha1.Service{}
	case "Dataplane":
		return &v1alpha1.Dataplane{}
	case "TrafficPolicy":
		return &v1alpha1.TrafficPolicy{}
	case "HTTPRoute":
		return &gwv1.HTTPRoute{}
	case "GRPCRoute":
		return &gwv1.GRPCRoute{}
	case "TCPRoute":
		return &gwv1.TCPRoute{}
	case "AccessPolicy":
		return &v1alpha1.AccessPolicy{}
	case "Broker":
		return &v1alpha1.Broker{}
	case "Subscription":
		return &v1alpha1.Subscription{}
	}
	return nil
}

// staticBootstrap is what the proxy's ADS client applies for r: RDS route
// configurations inlined into their connection managers, EDS clusters made
// STATIC with their load assignment.
func staticBootstrap(t testing.TB, r *Resources) *bootstrapv3.Bootstrap {
	t.Helper()
	routes := map[string]*routev3.RouteConfiguration{}
	for _, rc := range r.Routes {
		rc := rc.(*routev3.RouteConfiguration)
		routes[rc.Name] = rc
	}
	clas := map[string]*endpointv3.ClusterLoadAssignment{}
	for _, e := range r.Endpoints {
		e := e.(*endpointv3.ClusterLoadAssignment)
		clas[e.ClusterName] = e
	}
	b := &bootstrapv3.Bootstrap{StaticResources: &bootstrapv3.Bootstrap_StaticResources{}}
	for _, l := range r.Listeners {
		l := proto.Clone(l).(*listenerv3.Listener)
		for _, fc := range l.FilterChains {
			for _, f := range fc.Filters {
				h := &hcmv3.HttpConnectionManager{}
				if !f.GetTypedConfig().MessageIs(h) {
					continue
				}
				if err := f.GetTypedConfig().UnmarshalTo(h); err != nil {
					t.Fatal(err)
				}
				if rds := h.GetRds(); rds != nil {
					rc := routes[rds.RouteConfigName]
					if rc == nil {
						t.Fatalf("listener %s: route configuration %q is not in the output", l.Name, rds.RouteConfigName)
					}
					h.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: rc}
					f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(h)}
				}
			}
		}
		b.StaticResources.Listeners = append(b.StaticResources.Listeners, l)
	}
	for _, c := range r.Clusters {
		c := proto.Clone(c).(*clusterv3.Cluster)
		if c.GetType() == clusterv3.Cluster_EDS {
			cla := clas[c.Name]
			if cla == nil {
				t.Fatalf("cluster %s: no load assignment in the output", c.Name)
			}
			c.EdsClusterConfig = nil
			c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
			c.LoadAssignment = cla
		}
		b.StaticResources.Clusters = append(b.StaticResources.Clusters, c)
	}
	inlineSecrets(t, b, r)
	return b
}

// validateWithProxy checks a sidecar's output against the proxy's field
// allowlist and builds it with the proxy itself (without binding sockets),
// so translator and proxy never drift apart.
func validateWithProxy(t testing.TB, r *Resources) {
	t.Helper()
	b := staticBootstrap(t, r)
	if err := decode.Check(b, ""); err != nil {
		t.Fatalf("output uses fields the proxy does not support: %v", err)
	}
	p := proxy.New(proxy.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := p.Validate(b); err != nil {
		t.Fatalf("the proxy rejects the output: %v", err)
	}
}
