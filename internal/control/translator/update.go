package translator

import (
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

// Update returns the Index of objs, where changed lists every object that
// differs between idx's objects and objs (both versions of a changed
// object, as DependsOn takes them). It is NewIndex(objs), except that the
// pieces idx built (cache.go) and that no changed object can affect are
// carried over: a change to one route then rebuilds that route's pieces
// alone, and the messages of everything else stay the same objects, which
// the xDS server does not hash or decode again. A nil idx carries nothing.
//
// What a piece depends on follows the rules of DependsOn, from what the
// piece recorded while it was built: a Mesh change drops all of its mesh's
// pieces; a Service, route or TrafficPolicy change drops the pieces that
// read it, name it as a parent or target, or (for the outbound HTTP port
// and the proxyless form, which read every Service) any Service change;
// a Dataplane change drops the clusters of the Services selecting it
// (routes do not read endpoints). The same rules let a Service keep its
// endpoints from idx when no changed Service or Dataplane concerns it.
func (idx *Index) Update(objs, changed []v1alpha1.Object) *Index {
	if idx == nil {
		return NewIndex(objs)
	}
	if uncached {
		next := NewIndex(objs)
		next.secure(objs, idx.opts)
		return next
	}
	byMesh := map[string][]v1alpha1.Object{}
	dropped := map[string]bool{}
	for _, o := range changed {
		if m, ok := o.(*v1alpha1.Mesh); ok {
			dropped[m.Name] = true
			continue
		}
		byMesh[v1alpha1.MeshOf(o)] = append(byMesh[v1alpha1.MeshOf(o)], o)
	}
	deltas := map[string]*delta{}
	for name, m := range idx.meshes {
		deltas[name] = newDelta(m, byMesh[name])
	}
	next := newIndex(objs, idx, deltas)
	next.secure(objs, idx.opts)
	for name, m := range next.meshes {
		if old := idx.meshes[name]; old != nil && !dropped[name] {
			m.carry(old, deltas[name])
		}
	}
	return next
}

// delta is what a change means for one mesh's pieces, worked out once:
// a burst of a thousand Dataplanes costs a look-up of each in the selector
// index, not a check of each against every Service.
type delta struct {
	// endpoints lists the Services whose endpoints may change: changed
	// Services and those selecting a changed Dataplane (either version).
	endpoints map[ServiceKey]bool
	// clusters adds the Services a changed TrafficPolicy targets.
	clusters map[ServiceKey]bool
	// config is the changed objects other than Dataplanes: the ones
	// routes and listeners may read.
	config []v1alpha1.Object
	// services reports a changed Service: the outbound HTTP port and the
	// proxyless form read every Service of the mesh.
	services bool
}

func newDelta(prev *meshIndex, changed []v1alpha1.Object) *delta {
	d := &delta{endpoints: map[ServiceKey]bool{}, clusters: map[ServiceKey]bool{}}
	for _, o := range changed {
		switch o := o.(type) {
		case *v1alpha1.Dataplane:
			for _, s := range prev.selecting(o.Labels) {
				d.endpoints[s.key], d.clusters[s.key] = true, true
			}
			continue
		case *v1alpha1.Service:
			d.endpoints[keyOf(o)], d.clusters[keyOf(o)], d.services = true, true, true
		case *v1alpha1.TrafficPolicy:
			ns := v1alpha1.NamespaceOf(o)
			for _, t := range o.Spec.TargetRefs {
				if t.Kind == "Service" {
					d.clusters[ServiceKey{ns, string(t.Name)}] = true
				}
			}
		}
		d.config = append(d.config, o)
	}
	return d
}

// carry copies into m the pieces of old that the change does not affect.
func (m *meshIndex) carry(old *meshIndex, d *delta) {
	old.cache.Range(func(k, v any) bool {
		switch k.(type) {
		case httpAllKey, proxylessKey:
			if !d.services && !v.(*built).fx.affectedBy(d.config) {
				m.cache.Store(k, v)
			}
		}
		return true // inbound filters are not carried: they hold a *service
	})
	for key, os := range old.services {
		ns := m.services[key]
		if ns == nil {
			continue
		}
		clusters := !d.clusters[key]
		os.cache.Range(func(k, v any) bool {
			switch k.(type) {
			case builtKey, securedKey:
				if clusters {
					ns.cache.Store(k, v)
				}
			case outboundKey:
				if !v.(*builtOutbound).fx.affectedBy(d.config) {
					ns.cache.Store(k, v)
				}
			}
			return true
		})
	}
}

// affectedBy reports whether a change may change a piece that recorded fx.
// Dataplanes never do: pieces do not read endpoints.
func (fx *effects) affectedBy(changed []v1alpha1.Object) bool {
	for _, o := range changed {
		switch o := o.(type) {
		case *v1alpha1.Service:
			if fx.services[keyOf(o)] {
				return true
			}
		case *v1alpha1.TrafficPolicy:
			ns := v1alpha1.NamespaceOf(o)
			for _, t := range o.Spec.TargetRefs {
				if fx.services[ServiceKey{ns, string(t.Name)}] && t.Kind == "Service" || fx.routes[routeKey{string(t.Kind), ns, string(t.Name)}] {
					return true
				}
			}
		case *gwv1.HTTPRoute:
			if fx.routeAffected("HTTPRoute", o, o.Spec.ParentRefs) {
				return true
			}
		case *gwv1.GRPCRoute:
			if fx.routeAffected("GRPCRoute", o, o.Spec.ParentRefs) {
				return true
			}
		case *gwv1.TCPRoute:
			if fx.routeAffected("TCPRoute", o, o.Spec.ParentRefs) {
				return true
			}
		}
	}
	return false
}

func (fx *effects) routeAffected(kind string, o interface {
	GetNamespace() string
	GetName() string
}, parents []gwv1.ParentReference) bool {
	r := Resources{Services: fx.services, routes: fx.routes}
	return r.routeDepends(kind, o, parents)
}
