package translator

import (
	"cmp"
	"slices"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

// Index is the translator's view of every stored object, grouped by mesh and
// pre-joined (endpoints per service port, routes per parent Service,
// effective policy per Service and route). It is immutable once built: build
// a new one per store change and share it between Translate calls.
type Index struct {
	meshes map[string]*meshIndex
	opts   options // NewIndex's, kept by Update (mtls.go)
}

// ServiceKey names a Service by namespace and name.
type ServiceKey struct{ Namespace, Name string }

func (k ServiceKey) String() string { return k.Namespace + "/" + k.Name }

// routeKey names a route by kind, namespace and name.
type routeKey struct{ Kind, Namespace, Name string }

type meshIndex struct {
	name       string
	accessLog  *v1alpha1.AccessLog
	defaults   v1alpha1.PolicySpec // Trellis defaults under Mesh.spec.defaults
	services   map[ServiceKey]*service
	sorted     []*service // by namespace/name
	dataplanes map[ServiceKey]*v1alpha1.Dataplane
	// bySelector lists Services under one pair of their selector (the
	// smallest), so the Services selecting a Dataplane are found from its
	// labels without scanning the mesh.
	bySelector map[string][]*service
	// routePolicy is the layer of TrafficPolicies that target a route,
	// merged (oldest wins); it goes over the parent Service's policy.
	routePolicy map[routeKey]*v1alpha1.PolicySpec
	tracing     *meshTracing  // spec.tracing (tracing.go); nil: none
	cache       sync.Map      // pieces shared by the mesh's proxies (cache.go)
	sec         *security     // mutual TLS and access policies (mtls.go); nil: none
	bridge      bridgeObjects // Brokers and Subscriptions (bridge.go)
}

type service struct {
	key       ServiceKey
	spec      *v1alpha1.ServiceSpec
	policy    v1alpha1.PolicySpec  // mesh defaults under the Service's TrafficPolicies
	endpoints map[int32][]endpoint // by service port, sorted
	http      []*attached[*gwv1.HTTPRoute]
	grpc      []*attached[*gwv1.GRPCRoute]
	tcp       []*attached[*gwv1.TCPRoute]
	cache     sync.Map // builtKey → *builtCluster, outboundKey → *builtOutbound
}

// attached is a route attached to a Service through one parentRef.
type attached[R metav1.Object] struct {
	route R
	port  int32 // parentRef.port (or sectionName's); 0: every port; -1: none
}

type endpoint struct {
	address  string
	port     uint32
	locality v1alpha1.Locality
}

// NewIndex builds an Index from objs, which must already be defaulted and
// validated. Kinds the translator does not use are ignored.
func NewIndex(objs []v1alpha1.Object, opts ...Option) *Index {
	var o options
	for _, f := range opts {
		f(&o)
	}
	idx := newIndex(objs, nil, nil)
	idx.secure(objs, o)
	return idx
}

// newIndex builds the Index of objs. With prev, the Index objs were
// changed from, and the changes by mesh, a Service's endpoints are taken
// from prev when the change does not affect them.
func newIndex(objs []v1alpha1.Object, prev *Index, deltas map[string]*delta) *Index {
	idx := &Index{meshes: map[string]*meshIndex{}}
	mi := func(name string) *meshIndex {
		m := idx.meshes[name]
		if m == nil {
			m = &meshIndex{name: name, services: map[ServiceKey]*service{}, bySelector: map[string][]*service{},
				dataplanes: map[ServiceKey]*v1alpha1.Dataplane{}, routePolicy: map[routeKey]*v1alpha1.PolicySpec{}}
			idx.meshes[name] = m
		}
		return m
	}
	var meshes []*v1alpha1.Mesh
	var policies []*v1alpha1.TrafficPolicy
	var https []*gwv1.HTTPRoute
	var grpcs []*gwv1.GRPCRoute
	var tcps []*gwv1.TCPRoute
	for _, o := range objs {
		switch o := o.(type) {
		case *v1alpha1.Mesh:
			meshes = append(meshes, o)
		case *v1alpha1.Service:
			m := mi(v1alpha1.MeshOf(o))
			k := keyOf(o)
			m.services[k] = &service{key: k, spec: &o.Spec, endpoints: map[int32][]endpoint{}}
		case *v1alpha1.Dataplane:
			mi(v1alpha1.MeshOf(o)).dataplanes[keyOf(o)] = o
		case *v1alpha1.TrafficPolicy:
			policies = append(policies, o)
		case *v1alpha1.Broker, *v1alpha1.Subscription:
			mi(v1alpha1.MeshOf(o)).bridge.add(o)
		case *gwv1.HTTPRoute:
			https = append(https, o)
		case *gwv1.GRPCRoute:
			grpcs = append(grpcs, o)
		case *gwv1.TCPRoute:
			tcps = append(tcps, o)
		}
	}
	for _, m := range idx.meshes {
		m.defaults = trellisDefaults() // without a Mesh object: Trellis' alone
	}
	for _, m := range meshes {
		// A Mesh is cluster-scoped: its name is the mesh it defines.
		mm := mi(m.Name)
		mm.accessLog = m.Spec.AccessLog
		mm.tracing = newMeshTracing(m.Spec.Tracing)
		mm.defaults = trellisDefaults()
		if m.Spec.Defaults != nil {
			mergePolicy(&mm.defaults, m.Spec.Defaults)
		}
	}
	for _, m := range idx.meshes {
		for _, s := range m.services {
			m.sorted = append(m.sorted, s)
			s.policy = m.defaults
		}
		slices.SortFunc(m.sorted, func(a, b *service) int { return compareKeys(a.key, b.key) })
		for _, s := range m.sorted {
			if len(s.spec.Selector) > 0 {
				pair := slices.Min(selectorPairs(s.spec.Selector))
				m.bySelector[pair] = append(m.bySelector[pair], s)
			}
		}
		var pm *meshIndex
		var d *delta
		if prev != nil {
			pm, d = prev.meshes[m.name], deltas[m.name]
		}
		m.indexEndpoints(pm, d)
	}
	attachPolicies(idx, policies)
	attachRoutes(idx, https, func(s *service, r *gwv1.HTTPRoute, port int32) {
		s.http = append(s.http, &attached[*gwv1.HTTPRoute]{r, port})
	}, func(r *gwv1.HTTPRoute) []gwv1.ParentReference { return r.Spec.ParentRefs })
	attachRoutes(idx, grpcs, func(s *service, r *gwv1.GRPCRoute, port int32) {
		s.grpc = append(s.grpc, &attached[*gwv1.GRPCRoute]{r, port})
	}, func(r *gwv1.GRPCRoute) []gwv1.ParentReference { return r.Spec.ParentRefs })
	attachRoutes(idx, tcps, func(s *service, r *gwv1.TCPRoute, port int32) {
		s.tcp = append(s.tcp, &attached[*gwv1.TCPRoute]{r, port})
	}, func(r *gwv1.TCPRoute) []gwv1.ParentReference { return r.Spec.ParentRefs })
	return idx
}

func keyOf(o metav1.Object) ServiceKey {
	return ServiceKey{Namespace: v1alpha1.NamespaceOf(o), Name: o.GetName()}
}

func compareKeys(a, b ServiceKey) int {
	return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
}

// olderFirst orders objects by creation time, then namespace and name: the
// Gateway API's tie-break between conflicting routes and policies.
func olderFirst(a, b metav1.Object) int {
	ta, tb := a.GetCreationTimestamp(), b.GetCreationTimestamp()
	if c := ta.Compare(tb.Time); c != 0 {
		return c
	}
	return compareKeys(keyOf(a), keyOf(b))
}

// indexEndpoints joins Services and Dataplanes: a Dataplane is an endpoint
// of port P of Service S when its labels contain S's selector and it has an
// inbound serving P. Dataplanes reported not Ready are left out. Candidates
// come from the rarest selector pair, so the join costs about the number of
// matches, not services × dataplanes. With prev (the mesh's previous index)
// a Service the change d does not affect keeps its endpoints, and the few
// others scan the Dataplanes.
func (m *meshIndex) indexEndpoints(prev *meshIndex, d *delta) {
	var todo []*service
	for _, s := range m.services {
		if len(s.spec.Selector) == 0 {
			continue
		}
		if prev != nil {
			if ps := prev.services[s.key]; ps != nil && !d.endpoints[s.key] {
				s.endpoints = ps.endpoints // read-only once built
				continue
			}
		}
		todo = append(todo, s)
	}
	if len(todo) == 0 {
		return
	}
	if len(todo) <= 16 {
		var cands []*v1alpha1.Dataplane
		for _, dp := range m.dataplanes {
			if ready(dp) {
				cands = append(cands, dp)
			}
		}
		for _, s := range todo {
			s.addEndpoints(cands)
		}
		return
	}
	byLabel := map[string][]*v1alpha1.Dataplane{}
	for _, dp := range m.dataplanes {
		if !ready(dp) {
			continue
		}
		for k, v := range dp.Labels {
			byLabel[k+"="+v] = append(byLabel[k+"="+v], dp)
		}
	}
	for _, s := range todo {
		var cands []*v1alpha1.Dataplane
		first := true
		for k, v := range s.spec.Selector {
			l := byLabel[k+"="+v]
			if first || len(l) < len(cands) {
				cands, first = l, false
			}
		}
		s.addEndpoints(cands)
	}
}

// addEndpoints adds the candidates s selects to its endpoints.
func (s *service) addEndpoints(cands []*v1alpha1.Dataplane) {
	for _, dp := range cands {
		if !v1alpha1.Selects(s.spec.Selector, dp.Labels) {
			continue
		}
		for _, in := range dp.Spec.Inbound {
			sp := servicePortOf(in)
			if portOf(s.spec, sp) == nil {
				continue
			}
			loc := v1alpha1.Locality{}
			if dp.Spec.Locality != nil {
				loc = *dp.Spec.Locality
			}
			s.endpoints[sp] = append(s.endpoints[sp], endpoint{address: dp.Spec.Address, port: uint32(in.Port), locality: loc})
		}
	}
	for _, eps := range s.endpoints {
		slices.SortFunc(eps, func(a, b endpoint) int {
			return cmp.Or(strings.Compare(a.locality.Region, b.locality.Region), strings.Compare(a.locality.Zone, b.locality.Zone),
				strings.Compare(a.address, b.address), cmp.Compare(a.port, b.port))
		})
	}
}

// ready is false only for a Dataplane whose Ready condition is False (its
// proxy went away); one without conditions counts as ready.
func ready(dp *v1alpha1.Dataplane) bool {
	for _, c := range dp.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status != metav1.ConditionFalse
		}
	}
	return true
}

func selectorPairs(labels map[string]string) []string {
	pairs := make([]string, 0, len(labels))
	for k, v := range labels {
		pairs = append(pairs, k+"="+v)
	}
	return pairs
}

// selecting returns the Services selecting labels, sorted by namespace
// and name.
func (m *meshIndex) selecting(labels map[string]string) []*service {
	var out []*service
	for _, pair := range selectorPairs(labels) {
		for _, s := range m.bySelector[pair] {
			if v1alpha1.Selects(s.spec.Selector, labels) {
				out = append(out, s)
			}
		}
	}
	slices.SortFunc(out, func(a, b *service) int { return compareKeys(a.key, b.key) })
	return out
}

func servicePortOf(in v1alpha1.Inbound) int32 {
	if in.ServicePort != 0 {
		return in.ServicePort
	}
	return in.Port
}

// portOf returns the ServicePort numbered p, or nil.
func portOf(s *v1alpha1.ServiceSpec, p int32) *v1alpha1.ServicePort {
	for i := range s.Ports {
		if s.Ports[i].Port == p {
			return &s.Ports[i]
		}
	}
	return nil
}

func protocolOf(sp *v1alpha1.ServicePort) v1alpha1.Protocol {
	if sp == nil {
		return v1alpha1.ProtocolTCP
	}
	if sp.Protocol == "" {
		return v1alpha1.ProtocolHTTP
	}
	return sp.Protocol
}

func isHTTP(p v1alpha1.Protocol) bool {
	return p == v1alpha1.ProtocolHTTP || p == v1alpha1.ProtocolHTTP2 || p == v1alpha1.ProtocolGRPC
}

// attachRoutes records each route under the Services its parentRefs name
// (group "" and kind Service: the GAMMA pattern; other parents are
// gateways, not the mesh's business). A route only attaches to Services of
// its own mesh.
func attachRoutes[R metav1.Object](idx *Index, routes []R, add func(*service, R, int32), parents func(R) []gwv1.ParentReference) {
	slices.SortFunc(routes, func(a, b R) int { return olderFirst(a, b) })
	for _, r := range routes {
		m := idx.meshes[v1alpha1.MeshOf(r)]
		if m == nil {
			continue
		}
		for _, p := range parents(r) {
			if !isServiceRef(p.Group, p.Kind) {
				continue
			}
			ns := v1alpha1.NamespaceOf(r)
			if p.Namespace != nil && *p.Namespace != "" {
				ns = string(*p.Namespace)
			}
			s := m.services[ServiceKey{ns, string(p.Name)}]
			if s == nil {
				continue
			}
			var port int32
			switch {
			case p.Port != nil:
				port = *p.Port
			case p.SectionName != nil: // a Service's sectionName is a port name
				port = -1
				for _, sp := range s.spec.Ports {
					if sp.Name == string(*p.SectionName) {
						port = sp.Port
					}
				}
			}
			add(s, r, port)
		}
	}
}

func isServiceRef(g *gwv1.Group, k *gwv1.Kind) bool {
	return (g == nil || *g == "" || *g == "core") && k != nil && *k == "Service"
}

// attachPolicies merges TrafficPolicies into the Services and routes they
// target, oldest policy winning field by field (the Gateway API rule for
// conflicting policies).
func attachPolicies(idx *Index, policies []*v1alpha1.TrafficPolicy) {
	// Newest first, so each older policy overrides what newer ones set.
	slices.SortFunc(policies, func(a, b *v1alpha1.TrafficPolicy) int { return olderFirst(b, a) })
	svcLayer := map[*service]*v1alpha1.PolicySpec{}
	for _, p := range policies {
		m := idx.meshes[v1alpha1.MeshOf(p)]
		if m == nil {
			continue
		}
		ns := v1alpha1.NamespaceOf(p)
		for _, t := range p.Spec.TargetRefs {
			switch {
			case (t.Group == "" || t.Group == "core") && t.Kind == "Service":
				s := m.services[ServiceKey{ns, string(t.Name)}]
				if s == nil {
					continue
				}
				if svcLayer[s] == nil {
					svcLayer[s] = &v1alpha1.PolicySpec{}
				}
				mergePolicy(svcLayer[s], &p.Spec.PolicySpec)
			case t.Group == gwv1.GroupName && (t.Kind == "HTTPRoute" || t.Kind == "GRPCRoute" || t.Kind == "TCPRoute"):
				k := routeKey{string(t.Kind), ns, string(t.Name)}
				if m.routePolicy[k] == nil {
					m.routePolicy[k] = &v1alpha1.PolicySpec{}
				}
				mergePolicy(m.routePolicy[k], &p.Spec.PolicySpec)
			}
		}
	}
	for s, layer := range svcLayer {
		mergePolicy(&s.policy, layer) // copy-on-write: the mesh defaults stay intact
	}
}

// ServicesServing returns the Services of dp's mesh that dp serves on
// servicePort: their selector picks dp and they have that port. Sorted by
// namespace and name; found through the selector index, not a scan.
func (idx *Index) ServicesServing(dp *v1alpha1.Dataplane, servicePort int32) []ServiceKey {
	m := idx.meshes[v1alpha1.MeshOf(dp)]
	if m == nil {
		return nil
	}
	var out []ServiceKey
	for _, s := range m.selecting(dp.Labels) {
		if portOf(s.spec, servicePort) != nil {
			out = append(out, s.key)
		}
	}
	return out
}
