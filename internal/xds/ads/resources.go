package ads

import (
	"errors"
	"fmt"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

// The resource type URLs the client subscribes to.
const (
	ListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	RouteType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	ClusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	EndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
)

// allTypes lists the resource types in the order the client handles them.
var allTypes = []string{ClusterType, ListenerType, EndpointType, RouteType, SecretType}

// shortType is a type's label in metrics and logs.
func shortType(url string) string {
	switch url {
	case ListenerType:
		return "lds"
	case RouteType:
		return "rds"
	case ClusterType:
		return "cds"
	case EndpointType:
		return "eds"
	case SecretType:
		return "sds"
	}
	return url
}

// kindOf names a type's resources in error messages.
func kindOf(url string) string {
	switch url {
	case ListenerType:
		return "listener"
	case RouteType:
		return "route_configuration"
	case ClusterType:
		return "cluster"
	case EndpointType:
		return "cluster_load_assignment"
	case SecretType:
		return "secret"
	}
	return url
}

// listener is a decoded, checked Listener (pb, as received; run, with its
// SdsSecretConfigs made name-only), the RouteConfigurations its HTTP
// connection managers name in rds and the Secrets its TLS contexts take
// over ADS.
type listener struct {
	pb, run *listenerv3.Listener
	rds     []string
	sds     []string
}

// cluster is a decoded, checked Cluster (pb and run as for listener); eds
// is the ClusterLoadAssignment it takes its endpoints from ("" for a
// cluster that is not EDS), sds the Secrets its TLS context takes over ADS.
type cluster struct {
	pb, run *clusterv3.Cluster
	eds     string
	sds     []string
}

// decodeAll decodes and checks the resources of one response. The error
// lists every bad resource, each line prefixed with the resource's kind and
// name, e.g. `cluster "web": circuit_breakers.foo: not supported`.
func decodeAll(typeURL string, in []*anypb.Any) (map[string]any, error) {
	out := make(map[string]any, len(in))
	var errs []error
	for i, a := range in {
		if a.GetTypeUrl() != typeURL {
			errs = append(errs, fmt.Errorf("resources[%d]: type %q in a %s response", i, a.GetTypeUrl(), shortType(typeURL)))
			continue
		}
		name, res, err := decodeOne(typeURL, a)
		label := fmt.Sprintf("%s %q", kindOf(typeURL), name)
		if name == "" {
			label = fmt.Sprintf("%s resources[%d]", kindOf(typeURL), i)
		}
		if err != nil {
			errs = append(errs, prefixLines(label, err))
			continue
		}
		if name == "" {
			errs = append(errs, fmt.Errorf("%s: name: required", label))
			continue
		}
		if _, dup := out[name]; dup {
			errs = append(errs, fmt.Errorf("%s: duplicate name", label))
			continue
		}
		out[name] = res
	}
	return out, errors.Join(errs...)
}

func decodeOne(typeURL string, a *anypb.Any) (string, any, error) {
	name, res, err := decodeTyped(typeURL, a)
	if err == nil && res != nil {
		err = checkUnknown(wire(res))
	}
	return name, res, err
}

func decodeTyped(typeURL string, a *anypb.Any) (string, any, error) {
	switch typeURL {
	case ListenerType:
		l := &listenerv3.Listener{}
		if err := a.UnmarshalTo(l); err != nil {
			return "", nil, err
		}
		rds, err := rdsNames(l)
		if err != nil {
			return l.GetName(), nil, err
		}
		run := proto.Clone(l).(*listenerv3.Listener)
		sds, err := listenerSDS(run)
		if err != nil {
			return l.GetName(), nil, err
		}
		// Check it as the proxy will see it, with placeholders for the
		// RouteConfigurations still to come.
		inl, err := inlineRoutes(run, nil)
		if err == nil {
			err = decode.Validate(inl, "")
		}
		return l.GetName(), &listener{pb: l, run: run, rds: rds, sds: sds}, err
	case ClusterType:
		c := &clusterv3.Cluster{}
		if err := a.UnmarshalTo(c); err != nil {
			return "", nil, err
		}
		eds, err := edsName(c)
		if err != nil {
			return c.GetName(), nil, err
		}
		run := proto.Clone(c).(*clusterv3.Cluster)
		sds, err := clusterSDS(run)
		if err != nil {
			return c.GetName(), nil, err
		}
		return c.GetName(), &cluster{pb: c, run: run, eds: eds, sds: sds}, decode.Validate(staticCluster(run, nil), "")
	case RouteType:
		rc := &routev3.RouteConfiguration{}
		if err := a.UnmarshalTo(rc); err != nil {
			return "", nil, err
		}
		return rc.GetName(), rc, decode.Validate(rc, "")
	case EndpointType:
		cla := &endpointv3.ClusterLoadAssignment{}
		if err := a.UnmarshalTo(cla); err != nil {
			return "", nil, err
		}
		return cla.GetClusterName(), cla, decode.Validate(cla, "")
	case SecretType:
		sec := &tlsv3.Secret{}
		if err := a.UnmarshalTo(sec); err != nil {
			return "", nil, err
		}
		if sec.GetName() == IdentitySecret {
			return sec.GetName(), nil, errors.New("name: the proxy makes this secret itself; the control plane must not send it")
		}
		if err := decode.Validate(sec, ""); err != nil {
			return sec.GetName(), nil, err
		}
		return sec.GetName(), sec, checkTrustedCA(sec)
	}
	return "", nil, fmt.Errorf("type %q not supported", typeURL)
}

// hcmFilters calls fn for every HTTP connection manager in l, with its
// field path below the listener.
func hcmFilters(l *listenerv3.Listener, fn func(path string, f *listenerv3.Filter) error) error {
	chains := l.GetFilterChains()
	var errs []error
	visit := func(chainPath string, fc *listenerv3.FilterChain) {
		for j, f := range fc.GetFilters() {
			if f.GetTypedConfig().MessageIs((*hcmv3.HttpConnectionManager)(nil)) {
				if err := fn(fmt.Sprintf("%s.filters[%d].typed_config", chainPath, j), f); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	for i, fc := range chains {
		visit(fmt.Sprintf("filter_chains[%d]", i), fc)
	}
	if fc := l.GetDefaultFilterChain(); fc != nil {
		visit("default_filter_chain", fc)
	}
	return errors.Join(errs...)
}

// rdsNames returns the RouteConfigurations l's connection managers fetch
// with rds, checking that each comes over ADS.
func rdsNames(l *listenerv3.Listener) ([]string, error) {
	var names []string
	err := hcmFilters(l, func(path string, f *listenerv3.Filter) error {
		name, err := rdsOf(path, f)
		if name != "" {
			names = append(names, name)
		}
		return err
	})
	return names, err
}

// rdsOf returns the RouteConfiguration the connection manager f fetches
// with rds, or "" if it has its routes inline.
func rdsOf(path string, f *listenerv3.Filter) (string, error) {
	h := &hcmv3.HttpConnectionManager{}
	if err := f.GetTypedConfig().UnmarshalTo(h); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	rds := h.GetRds()
	if rds == nil {
		return "", nil
	}
	if cs := rds.GetConfigSource(); cs != nil && cs.GetAds() == nil {
		return "", fmt.Errorf("%s.rds.config_source: only ads is supported", path)
	}
	if rds.GetRouteConfigName() == "" {
		return "", fmt.Errorf("%s.rds.route_config_name: required", path)
	}
	return rds.GetRouteConfigName(), nil
}

// inlineRoutes returns a copy of l whose connection managers carry the
// RouteConfiguration named in rds as route_config. With routes nil, an
// empty placeholder stands in (for checking a listener on its own).
func inlineRoutes(l *listenerv3.Listener, routes map[string]*routev3.RouteConfiguration) (*listenerv3.Listener, error) {
	out := proto.Clone(l).(*listenerv3.Listener)
	err := hcmFilters(out, func(path string, f *listenerv3.Filter) error {
		h := &hcmv3.HttpConnectionManager{}
		if err := f.GetTypedConfig().UnmarshalTo(h); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		rds := h.GetRds()
		if rds == nil {
			return nil
		}
		rc := &routev3.RouteConfiguration{Name: rds.GetRouteConfigName()}
		if routes != nil {
			got, ok := routes[rds.GetRouteConfigName()]
			if !ok {
				return fmt.Errorf("%s.rds: route_configuration %q not received", path, rds.GetRouteConfigName())
			}
			rc = got
		}
		h.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: rc}
		a, err := anypb.New(h)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
		return nil
	})
	return out, err
}

// edsName returns the ClusterLoadAssignment an EDS cluster fetches
// (eds_cluster_config.service_name, else the cluster's name), or "" for a
// cluster of another type.
func edsName(c *clusterv3.Cluster) (string, error) {
	if c.GetType() != clusterv3.Cluster_EDS || c.GetClusterDiscoveryType() == nil {
		return "", nil
	}
	ec := c.GetEdsClusterConfig()
	if cs := ec.GetEdsConfig(); cs != nil && cs.GetAds() == nil {
		return "", errors.New("eds_cluster_config.eds_config: only ads is supported")
	}
	if n := ec.GetServiceName(); n != "" {
		return n, nil
	}
	return c.GetName(), nil
}

// staticCluster returns c as the proxy runs it: an EDS cluster becomes
// STATIC with cla as its load_assignment (an empty placeholder when cla is
// nil); every other field stays. Other clusters are returned as they are.
func staticCluster(c *clusterv3.Cluster, cla *endpointv3.ClusterLoadAssignment) *clusterv3.Cluster {
	if c.GetType() != clusterv3.Cluster_EDS || c.GetClusterDiscoveryType() == nil {
		return c
	}
	out := proto.Clone(c).(*clusterv3.Cluster)
	out.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
	out.EdsClusterConfig = nil
	if cla == nil {
		cla = &endpointv3.ClusterLoadAssignment{ClusterName: c.GetName()}
	}
	out.LoadAssignment = cla
	return out
}

// prefixLines prefixes every line of err with label and ": ".
func prefixLines(label string, err error) error {
	lines := strings.Split(err.Error(), "\n")
	for i, l := range lines {
		lines[i] = label + ": " + l
	}
	return errors.New(strings.Join(lines, "\n"))
}
