package translator

import (
	"net"
	"net/netip"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tracingv3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

// A Mesh with spec.tracing gives each of its sidecars a cluster to the
// collector (TracingCluster) and puts Envoy's HttpConnectionManager.tracing
// on every inbound and outbound connection manager: the OpenTelemetry
// tracer exporting to that cluster under the sidecar's identity service,
// the Mesh's sampling as random_sampling, the custom tags trellis.mesh and
// trellis.service, and spawn_upstream_span so that each sidecar records a
// server span per request and a client span per upstream attempt (web's
// app → [web server → web client] → [api server → api client] → api's
// app). Proxyless clients get no tracing: grpc-go's xDS resolver reads
// none of it.
//
// The connection managers then depend on the sidecar's identity service,
// so the cached pieces that hold them (cache.go) are keyed by it too
// (builder.traced, "" in a mesh without tracing); a Mesh change drops all
// of its mesh's pieces (update.go), which covers a change of spec.tracing.

// TracingCluster names the cluster of a traced mesh's sidecars that leads
// to the Mesh's spec.tracing.collector.
const TracingCluster = "trellis-tracing"

const otelTracerName = "envoy.tracers.opentelemetry"

// Custom tags every span of a traced mesh carries.
const (
	TagMesh    = "trellis.mesh"
	TagService = "trellis.service"
)

// meshTracing is a Mesh's spec.tracing, prepared once per Index.
type meshTracing struct {
	spec     *v1alpha1.MeshTracing
	sampling float64
	cluster  *clusterv3.Cluster // shared by every sidecar of the mesh
}

// newMeshTracing prepares t (nil: no tracing). The collector was validated
// (host:port); an IP address makes a STATIC cluster, a name a STRICT_DNS
// one, which the proxy resolves before it builds the exporter.
func newMeshTracing(t *v1alpha1.MeshTracing) *meshTracing {
	if t == nil {
		return nil
	}
	host, portStr, _ := net.SplitHostPort(t.Collector)
	port, _ := strconv.ParseUint(portStr, 10, 16)
	kind := clusterv3.Cluster_STRICT_DNS
	if _, err := netip.ParseAddr(host); err == nil {
		kind = clusterv3.Cluster_STATIC
	}
	c := &clusterv3.Cluster{
		Name:                 TracingCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: kind},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: TracingCluster,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: socketAddress(host, int32(port)),
				}},
			}}}},
		},
	}
	setHTTP2(c, v1alpha1.ProtocolGRPC) // OTLP/gRPC; Envoy's gRPC clients need an HTTP/2 cluster
	return &meshTracing{spec: t, sampling: v1alpha1.TracingSamplingOf(t), cluster: c}
}

// tracedAs returns the service name a sidecar's spans carry: its identity
// service in a mesh with tracing, "" otherwise (and for proxyless clients).
func (b *builder) tracedAs() string {
	if b.m.tracing == nil || b.p.Dataplane == nil {
		return ""
	}
	return v1alpha1.IdentityService(b.p.Dataplane)
}

// tracing is the connection managers' tracing for b's sidecar; nil
// without.
func (b *builder) tracing() *hcmv3.HttpConnectionManager_Tracing {
	if b.traced == "" {
		return nil
	}
	otel := &tracev3.OpenTelemetryConfig{
		GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
			EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: TracingCluster},
		}},
		ServiceName: b.traced,
	}
	return &hcmv3.HttpConnectionManager_Tracing{
		Provider: &tracev3.Tracing_Http{
			Name: otelTracerName, ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(otel)},
		},
		RandomSampling: &typev3.Percent{Value: b.m.tracing.sampling},
		CustomTags: []*tracingv3.CustomTag{
			literalTag(TagMesh, b.m.name),
			literalTag(TagService, b.traced),
		},
		SpawnUpstreamSpan: wrapperspb.Bool(true),
	}
}

func literalTag(tag, value string) *tracingv3.CustomTag {
	return &tracingv3.CustomTag{Tag: tag, Type: &tracingv3.CustomTag_Literal_{Literal: &tracingv3.CustomTag_Literal{Value: value}}}
}

// addTracingCluster adds the collector's cluster to a traced sidecar's
// configuration.
func (b *builder) addTracingCluster() {
	if b.traced != "" {
		b.res.Clusters = append(b.res.Clusters, b.m.tracing.cluster)
	}
}
