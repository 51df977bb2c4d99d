package translator

import (
	"slices"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

const httpOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// buildClusters emits an EDS cluster and its load assignment for every
// service port the proxy's routes reach.
func (b *builder) buildClusters() {
	names := make([]string, 0, len(b.clusters))
	for n := range b.clusters {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		ref := b.clusters[name]
		bc := b.secured(ref.s, ref.port, ref.s.built(ref.port, b.p.Proxyless))
		b.res.Clusters = append(b.res.Clusters, bc.cluster)
		b.res.Endpoints = append(b.res.Endpoints, bc.endpoints)
	}
}

// builtCluster is a service port's cluster and load assignment. They
// depend only on the Index (not on the asking proxy), so each Index builds
// them once and every proxy's Resources share them.
type builtCluster struct {
	cluster   *clusterv3.Cluster
	endpoints *endpointv3.ClusterLoadAssignment
}

type builtKey struct {
	port      int32
	proxyless bool
}

// built returns the cluster for port, building it on first use. Concurrent
// first uses may build it twice; the results are equal and one is kept.
func (s *service) built(port int32, proxyless bool) *builtCluster {
	k := builtKey{port, proxyless}
	if v, ok := s.cache.Load(k); ok {
		return v.(*builtCluster)
	}
	name := ClusterName(s.key, port)
	proto := protocolOf(portOf(s.spec, port))
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource()},
	}
	applyClusterPolicy(c, &s.policy, proto, proxyless)
	if !proxyless {
		setHTTP2(c, proto)
	}
	v, _ := s.cache.LoadOrStore(k, &builtCluster{cluster: c, endpoints: loadAssignment(name, s.endpoints[port])})
	return v.(*builtCluster)
}

// setHTTP2 makes the cluster speak HTTP/2 (h2c) to http2 and grpc ports.
func setHTTP2(c *clusterv3.Cluster, proto v1alpha1.Protocol) {
	if proto != v1alpha1.ProtocolHTTP2 && proto != v1alpha1.ProtocolGRPC {
		return
	}
	opts := &httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
		ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
		},
	}}
	c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpOptionsKey: mustAny(opts)}
}

// loadAssignment groups endpoints (sorted by locality) into one
// LocalityLbEndpoints per locality, weighted by its number of endpoints
// (grpc-go ignores localities without a weight or a Locality).
func loadAssignment(name string, eps []endpoint) *endpointv3.ClusterLoadAssignment {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: name}
	var cur *endpointv3.LocalityLbEndpoints
	var curLoc v1alpha1.Locality
	for _, e := range eps {
		if cur == nil || e.locality != curLoc {
			// Always a Locality, if empty: grpc-go NACKs localities without one.
			cur, curLoc = &endpointv3.LocalityLbEndpoints{Locality: &corev3.Locality{Region: e.locality.Region, Zone: e.locality.Zone}}, e.locality
			cla.Endpoints = append(cla.Endpoints, cur)
		}
		cur.LbEndpoints = append(cur.LbEndpoints, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
			Endpoint: &endpointv3.Endpoint{Address: socketAddress(e.address, int32(e.port))},
		}})
	}
	for _, le := range cla.Endpoints {
		le.LoadBalancingWeight = wrapperspb.UInt32(uint32(len(le.LbEndpoints)))
	}
	return cla
}

// inboundCluster is the application behind an inbound port.
func inboundCluster(name string, in v1alpha1.Inbound, proto v1alpha1.Protocol) *clusterv3.Cluster {
	addr := in.AppAddress
	if addr == "" {
		addr = localhost
	}
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(defaultConnectTimeout),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
				Endpoint: &endpointv3.Endpoint{Address: socketAddress(addr, in.AppPort)},
			}}},
		}}},
	}
	setHTTP2(c, proto)
	return c
}

// host is one service port as the outbound HTTP port or a proxyless client
// addresses it, with the Host names (domains) that reach it.
type host struct {
	s       *service
	port    int32
	domains []string
}

// hostNames lists every HTTP service port of the mesh with its names.
// "svc.ns" forms are unique; short forms ("svc", "svc.mesh", "svc:port")
// go to the Service in the caller's namespace, else the one in "default",
// else the first by namespace. A name without a port means the Service's
// first HTTP port.
func (b *builder) hostNames(proxyless bool) []host {
	type claim struct{ rank, order int }
	won := map[string]claim{}
	var hosts []host
	var contested [][]string
	for _, s := range b.m.sorted {
		primary := true
		for _, p := range s.spec.Ports {
			if !isHTTP(protocolOf(&p)) {
				continue
			}
			n, ns, port := s.key.Name, s.key.Namespace, ":"+strconv.Itoa(int(p.Port))
			var unique, short []string
			if proxyless {
				unique, short = []string{n + "." + ns + port}, []string{n + port}
				if primary {
					unique, short = append(unique, n+"."+ns), append(short, n)
				}
			} else {
				fq := n + "." + ns + ".svc.cluster.local"
				unique, short = []string{n + "." + ns + port, fq + port}, []string{n + port, n + ".mesh" + port}
				if primary {
					unique, short = append(unique, n+"."+ns, fq), append(short, n, n+".mesh")
				}
			}
			primary = false
			rank := 2
			switch ns {
			case b.callerNS:
				rank = 0
			case v1alpha1.DefaultNamespace:
				rank = 1
			}
			for _, d := range short {
				if c, ok := won[d]; !ok || rank < c.rank {
					won[d] = claim{rank, len(hosts)}
				}
			}
			hosts = append(hosts, host{s: s, port: p.Port, domains: unique})
			contested = append(contested, short)
		}
	}
	for i := range hosts {
		for _, d := range contested[i] {
			if won[d].order == i {
				hosts[i].domains = append(hosts[i].domains, d)
			}
		}
		slices.Sort(hosts[i].domains)
	}
	return hosts
}
