package ads

import (
	"slices"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

func yamlAny(t testing.TB, doc string, m proto.Message) *anypb.Any {
	t.Helper()
	if err := decode.Unmarshal([]byte(doc), m); err != nil {
		t.Fatal(err)
	}
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

const hcmRDS = `
name: edge
address: {socket_address: {address: 127.0.0.1, port_value: 0}}
filter_chains:
- filters:
  - name: hcm
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: edge
      rds: {config_source: {%s}, route_config_name: local}
      http_filters: [{name: router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
`

func TestDecodeAllErrors(t *testing.T) {
	withUnknown := func() *anypb.Any {
		a := yamlAny(t, "name: web\ntype: STATIC", &clusterv3.Cluster{})
		a.Value = protowire.AppendVarint(protowire.AppendTag(a.Value, 9999, protowire.VarintType), 1)
		return a
	}
	for _, tc := range []struct {
		name string
		typ  string
		res  []*anypb.Any
		err  string
	}{
		{name: "rds not over ads", typ: ListenerType,
			res: []*anypb.Any{yamlAny(t, strings.Replace(hcmRDS, "%s", "path_config_source: {path: /x}", 1), &listenerv3.Listener{})},
			err: `listener "edge": filter_chains[0].filters[0].typed_config.rds.config_source: only ads is supported`},
		{name: "eds not over ads", typ: ClusterType,
			res: []*anypb.Any{yamlAny(t, "name: web\ntype: EDS\neds_cluster_config: {eds_config: {path_config_source: {path: /x}}}", &clusterv3.Cluster{})},
			err: `cluster "web": eds_cluster_config.eds_config: only ads is supported`},
		{name: "unsupported cluster field", typ: ClusterType,
			res: []*anypb.Any{yamlAny(t, "name: web\ntype: EDS\neds_cluster_config: {eds_config: {ads: {}}}\nclose_connections_on_host_health_failure: true", &clusterv3.Cluster{})},
			err: `cluster "web": close_connections_on_host_health_failure: not supported`},
		{name: "unknown field", typ: ClusterType, res: []*anypb.Any{withUnknown()},
			err: `cluster "web": field number 9999 unknown`},
		{name: "duplicate", typ: RouteType,
			res: []*anypb.Any{yamlAny(t, "name: r", &routev3.RouteConfiguration{}), yamlAny(t, "name: r", &routev3.RouteConfiguration{})},
			err: `route_configuration "r": duplicate name`},
		{name: "no name", typ: EndpointType, res: []*anypb.Any{yamlAny(t, "endpoints: []", &endpointv3.ClusterLoadAssignment{})},
			err: `cluster_load_assignment resources[0]`},
		{name: "sds not over ads", typ: ClusterType,
			res: []*anypb.Any{yamlAny(t, sdsCluster("path_config_source: {path: /x}"), &clusterv3.Cluster{})},
			err: `cluster "web": transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].sds_config: only ads is supported`},
		{name: "identity from the control plane", typ: SecretType,
			res: []*anypb.Any{yamlAny(t, "name: trellis-identity\ntls_certificate: {}", &tlsv3.Secret{})},
			err: `secret "trellis-identity": name: the proxy makes this secret itself`},
		{name: "unsupported secret field", typ: SecretType,
			res: []*anypb.Any{yamlAny(t, "name: b\ngeneric_secret: {secret: {inline_string: x}}", &tlsv3.Secret{})},
			err: `secret "b": generic_secret: not supported`},
		{name: "bundle not PEM", typ: SecretType,
			res: []*anypb.Any{yamlAny(t, "name: b\nvalidation_context: {trusted_ca: {inline_string: junk}}", &tlsv3.Secret{})},
			err: `secret "b": validation_context.trusted_ca: want PEM certificates only`},
		{name: "wrong type", typ: EndpointType, res: []*anypb.Any{yamlAny(t, "name: r", &routev3.RouteConfiguration{})},
			err: `resources[0]: type "type.googleapis.com/envoy.config.route.v3.RouteConfiguration" in a eds response`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeAll(tc.typ, tc.res)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error = %v\nwant %q", err, tc.err)
			}
		})
	}
}

func sdsCluster(source string) string {
	return `
name: web
type: STATIC
transport_socket:
  name: tls
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
    common_tls_context:
      tls_certificate_sds_secret_configs: [{name: trellis-identity, sds_config: {` + source + `}}]
      combined_validation_context:
        default_validation_context: {}
        validation_context_sds_secret_config: {name: bundle, sds_config: {` + source + `}}
`
}

// TestSDSReferences: SdsSecretConfigs over ads become name-only in the
// form the proxy runs, the received form is kept (for the cache), and the
// names are listed, trellis-identity included.
func TestSDSReferences(t *testing.T) {
	res, err := decodeAll(ClusterType, []*anypb.Any{yamlAny(t, sdsCluster("ads: {}"), &clusterv3.Cluster{})})
	if err != nil {
		t.Fatal(err)
	}
	c := res["web"].(*cluster)
	if want := []string{"trellis-identity", "bundle"}; !slices.Equal(c.sds, want) {
		t.Errorf("sds = %v, want %v", c.sds, want)
	}
	up := &tlsv3.UpstreamTlsContext{}
	if err := c.run.GetTransportSocket().GetTypedConfig().UnmarshalTo(up); err != nil {
		t.Fatal(err)
	}
	cc := up.GetCommonTlsContext()
	if cc.GetTlsCertificateSdsSecretConfigs()[0].GetSdsConfig() != nil || cc.GetCombinedValidationContext().GetValidationContextSdsSecretConfig().GetSdsConfig() != nil {
		t.Errorf("run form keeps sds_config: %v", cc)
	}
	if err := c.pb.GetTransportSocket().GetTypedConfig().UnmarshalTo(up); err != nil {
		t.Fatal(err)
	}
	if up.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs()[0].GetSdsConfig().GetAds() == nil {
		t.Error("the received form lost its sds_config")
	}
	// A name-only reference is a static secret of the local bootstrap:
	// not fetched.
	res, err = decodeAll(ClusterType, []*anypb.Any{yamlAny(t, strings.ReplaceAll(sdsCluster("ads: {}"), ", sds_config: {ads: {}}", ""), &clusterv3.Cluster{})})
	if err != nil {
		t.Fatal(err)
	}
	if got := res["web"].(*cluster).sds; len(got) != 0 {
		t.Errorf("name-only references fetched: %v", got)
	}
}

func TestAssemble(t *testing.T) {
	res, err := decodeAll(ListenerType, []*anypb.Any{yamlAny(t, strings.Replace(hcmRDS, "%s", "ads: {}", 1), &listenerv3.Listener{})})
	if err != nil {
		t.Fatal(err)
	}
	l := res["edge"].(*listener)
	if len(l.rds) != 1 || l.rds[0] != "local" {
		t.Fatalf("rds names = %v", l.rds)
	}
	cl := &clusterv3.Cluster{}
	yamlAny(t, "name: web\ntype: EDS\neds_cluster_config: {eds_config: {ads: {}}, service_name: web-svc}\nlb_policy: LEAST_REQUEST\noutlier_detection: {consecutive_5xx: 3}", cl)
	cla := &endpointv3.ClusterLoadAssignment{}
	yamlAny(t, "cluster_name: web-svc\nendpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}}]}]", cla)
	rc := &routev3.RouteConfiguration{}
	yamlAny(t, `{name: local, virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: web}}]}]}`, rc)
	base := &bootstrapv3.Bootstrap{}
	if err := decode.Unmarshal([]byte("static_resources: {clusters: [{name: local-app, type: STATIC}]}"), base); err != nil {
		t.Fatal(err)
	}
	r := Resources{
		Listeners: map[string]*listenerv3.Listener{"edge": l.pb}, Routes: map[string]*routev3.RouteConfiguration{"local": rc},
		Clusters: map[string]*clusterv3.Cluster{"web": cl}, Endpoints: map[string]*endpointv3.ClusterLoadAssignment{"web-svc": cla},
	}
	b, err := Assemble(base, StaticNode("n", ""), r)
	if err != nil {
		t.Fatal(err)
	}
	cs := b.GetStaticResources().GetClusters()
	if len(cs) != 2 || cs[0].GetName() != "local-app" || cs[1].GetName() != "web" {
		t.Fatalf("clusters: %v", cs)
	}
	web := cs[1]
	if web.GetType() != clusterv3.Cluster_STATIC || web.GetEdsClusterConfig() != nil ||
		web.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().GetAddress() != "10.0.0.1" ||
		web.GetLbPolicy() != clusterv3.Cluster_LEAST_REQUEST || web.GetOutlierDetection().GetConsecutive_5Xx().GetValue() != 3 {
		t.Errorf("EDS cluster as assembled: %v", web)
	}
	if b.GetNode().GetId() != "n" {
		t.Errorf("node = %v", b.GetNode())
	}
	if cl.GetType() != clusterv3.Cluster_EDS {
		t.Error("Assemble changed its input")
	}
	inl, err := inlineRoutes(l.pb, r.Routes)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(inl, b.GetStaticResources().GetListeners()[0]) {
		t.Error("listener not inlined as inlineRoutes does")
	}

	// Name clashes with the local bootstrap, and missing references.
	r.Clusters["local-app"] = &clusterv3.Cluster{Name: "local-app"}
	delete(r.Routes, "local")
	_, err = Assemble(base, nil, r)
	for _, want := range []string{
		`cluster "local-app": name: a static cluster of the local bootstrap has this name`,
		`listener "edge": filter_chains[0].filters[0].typed_config.rds: route_configuration "local" not received`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error = %v\nwant %q", err, want)
		}
	}
}

func TestRewriteNamesResources(t *testing.T) {
	o := &origin{listeners: map[int]string{1: "edge"}, clusters: map[int]string{0: "web"},
		routes: map[string]string{"static_resources.listeners[1].filter_chains[0].filters[0].typed_config.route_config": "local"}}
	err := o.rewrite(errString("static_resources.clusters[0].type: bad\n" +
		"static_resources.listeners[1].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].domains: bad\n" +
		"static_resources.listeners[1].address: bad\n" +
		"static_resources.listeners[0].name: static one"))
	want := `cluster "web": type: bad
route_configuration "local": virtual_hosts[0].domains: bad
listener "edge": address: bad
static_resources.listeners[0].name: static one`
	if err.Error() != want {
		t.Errorf("rewritten:\n%s\nwant:\n%s", err, want)
	}
	types := map[string]*typeState{}
	for _, u := range []string{ListenerType, RouteType, ClusterType, EndpointType} {
		types[u] = &typeState{url: u, hasPend: true}
	}
	pend := []*typeState{types[ClusterType], types[ListenerType], types[EndpointType], types[RouteType]}
	got := blame(errString(`cluster "web": load_assignment.endpoints[0]: bad`), pend, types)
	if len(got) != 2 || got[0] != types[ClusterType] || got[1] != types[EndpointType] {
		t.Errorf("blame for a load_assignment error: %v", got)
	}
	if got := blame(errString("admin.address: cannot change"), pend, types); len(got) != 4 {
		t.Errorf("an error naming no resource blames %d types, want all 4", len(got))
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// FuzzDecodeAll: arbitrary bytes as any type's resource never panic, and
// whatever is accepted assembles or fails with an error.
func FuzzDecodeAll(f *testing.F) {
	for _, seed := range []proto.Message{
		&clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}},
		&routev3.RouteConfiguration{Name: "r"},
		&endpointv3.ClusterLoadAssignment{ClusterName: "e"},
		&listenerv3.Listener{Name: "l", Address: &corev3.Address{}},
	} {
		b, _ := proto.Marshal(seed)
		f.Add(b, uint8(0))
	}
	urls := []string{ListenerType, RouteType, ClusterType, EndpointType}
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		u := urls[int(which)%len(urls)]
		res, err := decodeAll(u, []*anypb.Any{{TypeUrl: u, Value: data}})
		if err != nil {
			return
		}
		r := Resources{}
		for n, v := range res {
			switch x := v.(type) {
			case *listener:
				r.Listeners = map[string]*listenerv3.Listener{n: x.pb}
			case *cluster:
				r.Clusters = map[string]*clusterv3.Cluster{n: x.pb}
			}
		}
		_, _ = Assemble(nil, StaticNode("n", ""), r)
	})
}

func TestRetainKeepsSubscribedResources(t *testing.T) {
	a, b, b2, c := &endpointv3.ClusterLoadAssignment{ClusterName: "a"}, &endpointv3.ClusterLoadAssignment{ClusterName: "b"},
		&endpointv3.ClusterLoadAssignment{ClusterName: "b"}, &endpointv3.ClusterLoadAssignment{ClusterName: "c"}
	ts := &typeState{url: EndpointType, names: []string{"a", "b"}, current: map[string]any{"a": a, "b": b, "c": c}}
	got := retain(ts, map[string]any{"b": b2})
	if len(got) != 2 || got["a"] != a || got["b"] != b2 {
		t.Errorf("retain = %v; want a kept, b replaced, c (no longer subscribed) dropped", got)
	}
}
