package v1alpha1

import (
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Ref names one object another references.
type Ref struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// String returns "Kind namespace/name", or "Kind name" without namespace.
func (r Ref) String() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

// Lookup reads the objects a reference may resolve to. Kinds are the kind
// names of Kinds (KindService, ...); cluster-scoped kinds use namespace "".
// The control plane implements it over its store (or over a batch being
// applied together with the store).
type Lookup interface {
	// Get returns the object of kind in namespace with name.
	Get(kind, namespace, name string) (Object, bool)
	// List returns every object of kind, all namespaces and meshes.
	List(kind string) []Object
}

// Refs lists, without duplicates and in document order, the objects obj
// references: a route's parents, backends and mirror backends, a
// TrafficPolicy's or AccessPolicy's targets, a Dataplane's outbound
// Services. An AccessPolicy's sources are identities, not objects, and are
// not listed. Mesh membership
// (MeshLabel) is not listed. The control plane uses it for describe and to
// find the proxies a change affects. References are listed as written, even
// to kinds Trellis does not store (a parentRef to a Gateway).
func Refs(obj Object) []Ref {
	ns := NamespaceOf(obj)
	var refs []Ref
	seen := map[Ref]bool{}
	add := func(r Ref) {
		if !seen[r] {
			seen[r] = true
			refs = append(refs, r)
		}
	}
	switch o := obj.(type) {
	case *Dataplane:
		for _, out := range o.Spec.Outbound {
			add(Ref{Kind: KindService, Namespace: or(out.Namespace, ns), Name: out.Service})
		}
	case *TrafficPolicy:
		for _, t := range o.Spec.TargetRefs {
			add(Ref{Kind: string(t.Kind), Namespace: ns, Name: string(t.Name)})
		}
	case *AccessPolicy:
		for _, t := range o.Spec.TargetRefs {
			add(Ref{Kind: string(t.Kind), Namespace: ns, Name: string(t.Name)})
		}
	case *Subscription:
		add(Ref{Kind: KindBroker, Namespace: ns, Name: o.Spec.BrokerRef.Name})
		add(Ref{Kind: KindService, Namespace: ns, Name: o.Spec.TargetRef.Name})
	case *gwv1.HTTPRoute:
		for _, r := range parentRefs(o.Spec.ParentRefs, ns) {
			add(r)
		}
		for _, rule := range o.Spec.Rules {
			for _, b := range rule.BackendRefs {
				add(backendRef(&b.BackendObjectReference, ns))
				for _, r := range httpMirrors(b.Filters, ns) {
					add(r)
				}
			}
			for _, r := range httpMirrors(rule.Filters, ns) {
				add(r)
			}
		}
	case *gwv1.GRPCRoute:
		for _, r := range parentRefs(o.Spec.ParentRefs, ns) {
			add(r)
		}
		for _, rule := range o.Spec.Rules {
			for _, b := range rule.BackendRefs {
				add(backendRef(&b.BackendObjectReference, ns))
				for _, r := range grpcMirrors(b.Filters, ns) {
					add(r)
				}
			}
			for _, r := range grpcMirrors(rule.Filters, ns) {
				add(r)
			}
		}
	case *gwv1.TCPRoute:
		for _, r := range parentRefs(o.Spec.ParentRefs, ns) {
			add(r)
		}
		for _, rule := range o.Spec.Rules {
			for _, b := range rule.BackendRefs {
				add(backendRef(&b.BackendObjectReference, ns))
			}
		}
	}
	return refs
}

func or(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

func parentRefs(ps []gwv1.ParentReference, ns string) []Ref {
	refs := make([]Ref, len(ps))
	for i, p := range ps {
		kind := "Gateway"
		if p.Kind != nil {
			kind = string(*p.Kind)
		}
		refs[i] = Ref{Kind: kind, Namespace: or(string(deref(p.Namespace)), ns), Name: string(p.Name)}
	}
	return refs
}

func backendRef(b *gwv1.BackendObjectReference, ns string) Ref {
	kind := KindService
	if b.Kind != nil {
		kind = string(*b.Kind)
	}
	return Ref{Kind: kind, Namespace: or(string(deref(b.Namespace)), ns), Name: string(b.Name)}
}

func httpMirrors(fs []gwv1.HTTPRouteFilter, ns string) []Ref {
	var refs []Ref
	for _, f := range fs {
		if f.RequestMirror != nil {
			refs = append(refs, backendRef(&f.RequestMirror.BackendRef, ns))
		}
	}
	return refs
}

func grpcMirrors(fs []gwv1.GRPCRouteFilter, ns string) []Ref {
	var refs []Ref
	for _, f := range fs {
		if f.RequestMirror != nil {
			refs = append(refs, backendRef(&f.RequestMirror.BackendRef, ns))
		}
	}
	return refs
}
