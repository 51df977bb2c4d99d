package translator

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	kafkav3 "github.com/envoyproxy/go-control-plane/contrib/envoy/extensions/filters/network/kafka_broker/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

// Kafka broker address rewrite from the mesh (docs/messaging.md, "Kafka
// brokers through the mesh"), after Envoy's kafka_broker
// id_based_broker_address_rewrite_spec. A broker's Dataplane declares its
// broker id (spec.inbound[].kafkaBrokerID); a caller's outbound to a kafka
// Service port with spec.outbound[].kafka gets, besides the bootstrap
// listener on localPort, one listener per broker id b of the Service's
// ready instances on 127.0.0.1:brokerPortBase+b. Each goes to a cluster
// holding only that broker's endpoints ("<cluster>/broker-<b>", over mutual
// TLS like the Service's cluster), and every one of these listeners
// rewrites the broker addresses in Metadata, FindCoordinator and
// DescribeCluster responses to the local ports, so that the client
// reaches every broker through its sidecar whatever the brokers
// advertise. A broker id above maxBrokerID gets no port and keeps the
// address it advertises (the client then goes past the mesh).

// brokerEndpoints returns the endpoints of port of s by Kafka broker id:
// the Dataplanes s selects whose inbound serving port declares a broker
// id. A broker id is there whether or not its Dataplanes are ready (an
// id with none ready has no endpoints), so that the set of broker
// clusters changes with the configuration only, as the Services'
// clusters do, and never with a proxy coming or going: a proxy receiving
// its first clusters asks for their endpoints by name, and an ADS server
// holding a newer cluster set waits for a request naming all of them.
func (m *meshIndex) brokerEndpoints(s *service, port int32) map[int32][]endpoint {
	out := map[int32][]endpoint{}
	if len(s.spec.Selector) == 0 {
		return out
	}
	for _, dp := range m.dataplanes {
		if !v1alpha1.Selects(s.spec.Selector, dp.Labels) {
			continue
		}
		for _, in := range dp.Spec.Inbound {
			if in.KafkaBrokerID == nil || servicePortOf(in) != port {
				continue
			}
			if !ready(dp) {
				if _, ok := out[*in.KafkaBrokerID]; !ok {
					out[*in.KafkaBrokerID] = nil
				}
				continue
			}
			loc := v1alpha1.Locality{}
			if dp.Spec.Locality != nil {
				loc = *dp.Spec.Locality
			}
			id := *in.KafkaBrokerID
			out[id] = append(out[id], endpoint{address: dp.Spec.Address, port: uint32(in.Port), locality: loc})
		}
	}
	for _, eps := range out {
		slices.SortFunc(eps, func(a, b endpoint) int {
			return cmp.Or(strings.Compare(a.locality.Region, b.locality.Region), strings.Compare(a.locality.Zone, b.locality.Zone),
				strings.Compare(a.address, b.address), cmp.Compare(a.port, b.port))
		})
	}
	return out
}

// outboundListeners returns the listeners of outbound out to port of s,
// whose filters o holds: the cached listener on localPort, or, for a
// kafka port with out.Kafka, the bootstrap and broker listeners with the
// address rewrite (built for each translation: they follow the brokers'
// Dataplanes).
func (b *builder) outboundListeners(s *service, port int32, out v1alpha1.Outbound, o *builtOutbound) []types.Resource {
	if out.Kafka == nil || protocolOf(portOf(s.spec, port)) != v1alpha1.ProtocolKafka || len(o.filters) < 2 || o.filters[0].GetName() != kafkaFilterName {
		return []types.Resource{o.listener(out.LocalPort)}
	}
	first, last := out.Kafka.BrokerPorts()
	eps := b.m.brokerEndpoints(s, port)
	ids := make([]int32, 0, len(eps))
	for id := range eps {
		if id <= last-first {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	spec := &kafkav3.IdBasedBrokerRewriteSpec{}
	for _, id := range ids {
		spec.Rules = append(spec.Rules, &kafkav3.IdBasedBrokerRewriteRule{Id: uint32(id), Host: localhost, Port: uint32(first + id)})
	}
	kb := &kafkav3.KafkaBroker{
		StatPrefix:               messagingStatPrefix(s.key, port, false),
		BrokerAddressRewriteSpec: &kafkav3.KafkaBroker_IdBasedBrokerAddressRewriteSpec{IdBasedBrokerAddressRewriteSpec: spec},
	}
	kf := &listenerv3.Filter{Name: kafkaFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(kb)}}
	// Filters after kafka_broker (kafka_trace) stay; tcp_proxy is last.
	mid := o.filters[1 : len(o.filters)-1]
	chain := func(tcp *listenerv3.Filter) []*listenerv3.Filter {
		return append(append([]*listenerv3.Filter{kf}, mid...), tcp)
	}
	ls := []types.Resource{listener("outbound:"+localhost+":"+strconv.Itoa(int(out.LocalPort)), localhost, out.LocalPort, chain(o.filters[len(o.filters)-1])...)}
	cname := ClusterName(s.key, port)
	base := b.secured(s, port, s.built(port, b.p.Proxyless))
	for _, id := range ids {
		name := cname + "/broker-" + strconv.Itoa(int(id))
		b.addBrokerCluster(name, base.cluster, eps[id])
		tcp := b.tcpProxy(cname, &tcpproxyv3.TcpProxy{ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: name}}, &s.policy)
		lp := first + id
		ls = append(ls, listener("outbound:"+localhost+":"+strconv.Itoa(int(lp)), localhost, lp, chain(tcp)...))
	}
	return ls
}

// addBrokerCluster adds the cluster name, a copy of the Service's cluster
// c (policy, mutual TLS) holding only eps, unless it is there already.
func (b *builder) addBrokerCluster(name string, c *clusterv3.Cluster, eps []endpoint) {
	for _, r := range b.res.Clusters {
		if nameOf(r) == name {
			return
		}
	}
	bc := proto.Clone(c).(*clusterv3.Cluster)
	bc.Name = name
	b.res.Clusters = append(b.res.Clusters, bc)
	b.res.Endpoints = append(b.res.Endpoints, loadAssignment(name, eps))
}
