package translator

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

// Proxy is the client asking for configuration: a sidecar (Dataplane set)
// or a proxyless gRPC client of Mesh.
type Proxy struct {
	// Mesh is the proxy's mesh; only its objects are visible.
	Mesh string
	// Dataplane is the sidecar's own Dataplane; nil for proxyless clients.
	Dataplane *v1alpha1.Dataplane
	// Proxyless asks for the form grpc-go's xDS resolver reads: API
	// listeners per service name instead of sockets.
	Proxyless bool
	// NodeID is the xDS node id, for the caller's bookkeeping; it does not
	// change the output.
	NodeID string
}

// Resources is one proxy's configuration: Envoy v3 Listeners, Route
// Configurations, Clusters and ClusterLoadAssignments, each list sorted by
// name, and what the translation read, for DependsOn. The messages are
// shared with the Index and other proxies' Resources: treat them as
// read-only (clone before changing one).
type Resources struct {
	Listeners, Routes, Clusters, Endpoints []types.Resource
	// Secrets holds the mesh's trust bundle (TrustBundleSecret) for a
	// sidecar of a mesh with mutual TLS; empty otherwise (mtls.go).
	Secrets []types.Resource
	// SecretsVersion is the version of the trust bundle in Secrets (the
	// TrustBundles source's), "" without one; hand it to the xDS server
	// as the Secrets' version.
	SecretsVersion string
	// Services are the Services this proxy's configuration reads (config
	// scoping), including referenced ones that do not exist (yet).
	Services map[ServiceKey]bool

	mesh      string
	self      *ServiceKey       // the sidecar's Dataplane
	labels    map[string]string // its labels
	httpAll   bool              // reads every HTTP service of the mesh
	routes    map[routeKey]bool // routes read
	selectors []map[string]string
	access    map[ServiceKey]bool // Services whose AccessPolicies the inbounds read
	foreign   map[string]bool     // other meshes whose trust domain they read
	mtls      bool                // carries the mesh's trust bundle
	bridge    bool                // has the bridge listener (bridge.go)
}

// builder holds one Translate call's state.
type builder struct {
	m        *meshIndex
	p        Proxy
	callerNS string
	res      *Resources
	clusters map[string]clusterRef
	routeCfg map[string]bool // route configurations already built
	traced   string          // the service name of the sidecar's spans; "": no tracing (tracing.go)
}

type clusterRef struct {
	s    *service
	port int32
}

// Translate computes p's configuration from idx. It fails only on a proxy
// it cannot configure (no Dataplane and not proxyless, a Dataplane of
// another mesh, two listeners on one port); references that do not resolve
// are configuration states, translated as the Gateway API says (a 500
// route, a left-out backend) and reported in Services for DependsOn.
func Translate(idx *Index, p Proxy) (*Resources, error) {
	m := idx.meshes[p.Mesh]
	if m == nil {
		m = &meshIndex{name: p.Mesh, defaults: trellisDefaults(), services: map[ServiceKey]*service{},
			bySelector: map[string][]*service{}, routePolicy: map[routeKey]*v1alpha1.PolicySpec{}}
	}
	size := 0 // a sidecar reads about two services per outbound (a route's backends)
	if p.Dataplane != nil {
		size = 2*len(p.Dataplane.Spec.Outbound) + len(p.Dataplane.Spec.Inbound)
	}
	b := &builder{m: m, p: p, clusters: make(map[string]clusterRef, size), routeCfg: map[string]bool{},
		res: &Resources{Services: make(map[ServiceKey]bool, size), mesh: p.Mesh, routes: map[routeKey]bool{},
			access: map[ServiceKey]bool{}, foreign: map[string]bool{}}}
	switch {
	case p.Dataplane != nil:
		if got := v1alpha1.MeshOf(p.Dataplane); got != p.Mesh {
			return nil, fmt.Errorf("dataplane %s: belongs to mesh %q, not %q", keyOf(p.Dataplane), got, p.Mesh)
		}
		b.traced = b.tracedAs()
		if err := b.sidecar(); err != nil {
			return nil, fmt.Errorf("dataplane %s: %w", keyOf(p.Dataplane), err)
		}
	case p.Proxyless:
		b.proxyless()
	default:
		return nil, errors.New("proxy: neither a Dataplane nor proxyless")
	}
	b.buildClusters()
	b.addTracingCluster()
	b.addSecrets()
	for k := range b.res.Services {
		if s := m.services[k]; s != nil {
			b.res.selectors = append(b.res.selectors, s.spec.Selector)
		}
	}
	r := b.res
	for _, l := range [][]types.Resource{r.Listeners, r.Routes, r.Clusters, r.Endpoints} {
		slices.SortFunc(l, func(a, b types.Resource) int { return cmp.Compare(nameOf(a), nameOf(b)) })
	}
	return r, nil
}

func nameOf(r types.Resource) string {
	switch r := r.(type) {
	case interface{ GetName() string }:
		return r.GetName()
	case interface{ GetClusterName() string }:
		return r.GetClusterName()
	}
	return ""
}

// ClusterName is the name of the cluster (and of its load assignment) for
// port of Service k: "<namespace>/<name>:<port>".
func ClusterName(k ServiceKey, port int32) string {
	return k.Namespace + "/" + k.Name + ":" + strconv.Itoa(int(port))
}

// cluster records that the proxy needs port of s and returns its name.
func (b *builder) cluster(s *service, port int32) string {
	name := ClusterName(s.key, port)
	b.clusters[name] = clusterRef{s, port}
	b.res.Services[s.key] = true
	return name
}

// backend resolves a backendRef (or a mirror's) to a cluster name. Only
// Services of the proxy's mesh resolve; the port may be left out when the
// Service has one.
func (b *builder) backend(ref gwv1.BackendObjectReference, routeNS string) (string, bool) {
	if (ref.Group != nil && *ref.Group != "" && *ref.Group != "core") || (ref.Kind != nil && *ref.Kind != "Service") {
		return "", false
	}
	k := ServiceKey{routeNS, string(ref.Name)}
	if ref.Namespace != nil && *ref.Namespace != "" {
		k.Namespace = string(*ref.Namespace)
	}
	b.res.Services[k] = true
	s := b.m.services[k]
	if s == nil {
		return "", false
	}
	port, ok := resolvePort(s.spec, 0)
	if ref.Port != nil {
		port, ok = *ref.Port, portOf(s.spec, *ref.Port) != nil
	}
	if !ok {
		return "", false
	}
	return b.cluster(s, port), true
}

// resolvePort returns port if the Service has it, or with port 0 the
// Service's only port.
func resolvePort(s *v1alpha1.ServiceSpec, port int32) (int32, bool) {
	if port == 0 {
		if len(s.Ports) == 1 {
			return s.Ports[0].Port, true
		}
		return 0, false
	}
	return port, portOf(s, port) != nil
}

// DependsOn reports whether a change to obj (added, changed or deleted)
// may change this proxy's output. Call it with both the old and the new
// version of a changed object. It is exact for objects of other meshes and
// kinds the translator ignores (false), and errs on the side of true.
func (r *Resources) DependsOn(obj v1alpha1.Object) bool {
	if m, ok := obj.(*v1alpha1.Mesh); ok {
		return m.Name == r.mesh || r.foreign[m.Name]
	}
	if v1alpha1.MeshOf(obj) != r.mesh {
		return false
	}
	switch o := obj.(type) {
	case *v1alpha1.Broker, *v1alpha1.Subscription:
		return r.bridge
	case *v1alpha1.Service:
		if r.Services[keyOf(o)] {
			return true
		}
		if r.httpAll && slices.ContainsFunc(o.Spec.Ports, func(p v1alpha1.ServicePort) bool { return isHTTP(protocolOf(&p)) }) {
			return true
		}
		return r.self != nil && v1alpha1.Selects(o.Spec.Selector, r.labels) // it may serve an inbound
	case *v1alpha1.Dataplane:
		if r.self != nil && *r.self == keyOf(o) {
			return true
		}
		for _, sel := range r.selectors {
			if v1alpha1.Selects(sel, o.Labels) {
				return true // an endpoint of a Service read
			}
		}
		return false
	case *v1alpha1.TrafficPolicy:
		ns := v1alpha1.NamespaceOf(o)
		for _, t := range o.Spec.TargetRefs {
			if r.Services[ServiceKey{ns, string(t.Name)}] && t.Kind == "Service" || r.routes[routeKey{string(t.Kind), ns, string(t.Name)}] {
				return true
			}
		}
		return false
	case *v1alpha1.AccessPolicy:
		ns := v1alpha1.NamespaceOf(o)
		for _, t := range o.Spec.TargetRefs {
			if r.access[ServiceKey{ns, string(t.Name)}] {
				return true
			}
		}
		return false
	case *gwv1.HTTPRoute:
		return r.routeDepends("HTTPRoute", o, o.Spec.ParentRefs)
	case *gwv1.GRPCRoute:
		return r.routeDepends("GRPCRoute", o, o.Spec.ParentRefs)
	case *gwv1.TCPRoute:
		return r.routeDepends("TCPRoute", o, o.Spec.ParentRefs)
	}
	return false
}

func (r *Resources) routeDepends(kind string, o interface {
	GetNamespace() string
	GetName() string
}, parents []gwv1.ParentReference) bool {
	ns := cmp.Or(o.GetNamespace(), v1alpha1.DefaultNamespace)
	if r.routes[routeKey{kind, ns, o.GetName()}] {
		return true
	}
	for _, p := range parents {
		k := ServiceKey{ns, string(p.Name)}
		if p.Namespace != nil && *p.Namespace != "" {
			k.Namespace = string(*p.Namespace)
		}
		if isServiceRef(p.Group, p.Kind) && r.Services[k] {
			return true
		}
	}
	return false
}

// mustAny packs m deterministically (so equal inputs give equal bytes).
// It panics only on a message that cannot be marshaled: a programming
// error in this package.
func mustAny(m proto.Message) *anypb.Any {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("translator: marshal %T: %v", m, err))
	}
	return &anypb.Any{TypeUrl: "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName()), Value: b}
}

// Consistent checks that the output is self-contained: names are unique
// per type, every route configuration a listener reads over RDS (in a
// filter chain or an API listener) is present and read, and every EDS
// cluster has its load assignment and no load assignment is left over,
// and every Secret a TLS context reads over ADS (trellis-identity aside,
// which the proxy makes) is present and read. Use
// it instead of go-control-plane's Snapshot.Consistent, which does not
// follow API listeners (the proxyless form).
func (r *Resources) Consistent() error {
	var errs []error
	names := func(kind string, rs []types.Resource) map[string]bool {
		m := map[string]bool{}
		for _, x := range rs {
			if n := nameOf(x); m[n] {
				errs = append(errs, fmt.Errorf("%s %q: duplicate", kind, n))
			} else {
				m[n] = true
			}
		}
		return m
	}
	names("listener", r.Listeners)
	routes, clas := names("route configuration", r.Routes), names("load assignment", r.Endpoints)
	names("cluster", r.Clusters)
	errs = append(errs, r.secretErrors(names("secret", r.Secrets))...)
	readRoutes, edsClusters := map[string]bool{}, map[string]bool{}
	for _, x := range r.Listeners {
		l := x.(*listenerv3.Listener)
		hcms := []*anypb.Any{l.GetApiListener().GetApiListener()}
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				hcms = append(hcms, f.GetTypedConfig())
			}
		}
		for _, a := range hcms {
			h := &hcmv3.HttpConnectionManager{}
			if a == nil || !a.MessageIs(h) {
				continue
			}
			if err := a.UnmarshalTo(h); err != nil {
				errs = append(errs, fmt.Errorf("listener %q: %w", l.GetName(), err))
				continue
			}
			if n := h.GetRds().GetRouteConfigName(); n != "" {
				readRoutes[n] = true
				if !routes[n] {
					errs = append(errs, fmt.Errorf("listener %q: route configuration %q missing", l.GetName(), n))
				}
			}
		}
	}
	for n := range routes {
		if !readRoutes[n] {
			errs = append(errs, fmt.Errorf("route configuration %q: no listener reads it", n))
		}
	}
	for _, x := range r.Clusters {
		if c := x.(*clusterv3.Cluster); c.GetType() == clusterv3.Cluster_EDS {
			edsClusters[c.GetName()] = true
			if !clas[c.GetName()] {
				errs = append(errs, fmt.Errorf("cluster %q: load assignment missing", c.GetName()))
			}
		}
	}
	for n := range clas {
		if !edsClusters[n] {
			errs = append(errs, fmt.Errorf("load assignment %q: no EDS cluster", n))
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return cmp.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}
