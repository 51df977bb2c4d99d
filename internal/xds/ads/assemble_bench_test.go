package ads

import (
	"fmt"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// BenchmarkAssemble200: the work per applied update, before the proxy
// builds its snapshot, for a sidecar that calls 200 services.
func BenchmarkAssemble200(b *testing.B) {
	res, err := decodeAll(ListenerType, []*anypb.Any{yamlAny(b, strings.Replace(hcmRDS, "%s", "ads: {}", 1), &listenerv3.Listener{})})
	if err != nil {
		b.Fatal(err)
	}
	r := Resources{
		Listeners: map[string]*listenerv3.Listener{"edge": res["edge"].(*listener).pb},
		Routes:    map[string]*routev3.RouteConfiguration{},
		Clusters:  map[string]*clusterv3.Cluster{}, Endpoints: map[string]*endpointv3.ClusterLoadAssignment{},
	}
	var routes strings.Builder
	routes.WriteString("{name: local, virtual_hosts: [")
	for i := range 200 {
		n := fmt.Sprintf("svc-%d", i)
		c := &clusterv3.Cluster{}
		yamlAny(b, "name: "+n+"\ntype: EDS\neds_cluster_config: {eds_config: {ads: {}}}\noutlier_detection: {consecutive_5xx: 5}", c)
		r.Clusters[n] = c
		cla := &endpointv3.ClusterLoadAssignment{}
		yamlAny(b, "cluster_name: "+n+"\nendpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}}, {endpoint: {address: {socket_address: {address: 10.0.0.2, port_value: 80}}}}]}]", cla)
		r.Endpoints[n] = cla
		fmt.Fprintf(&routes, "{name: %s, domains: [%s], routes: [{match: {prefix: /}, route: {cluster: %s}}]},", n, n, n)
	}
	routes.WriteString("]}")
	rc := &routev3.RouteConfiguration{}
	yamlAny(b, routes.String(), rc)
	r.Routes["local"] = rc
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Assemble(nil, StaticNode("n", ""), r); err != nil {
			b.Fatal(err)
		}
	}
}
