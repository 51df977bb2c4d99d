package v1alpha1

import (
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Condition types, as in the Gateway API.
const (
	ConditionAccepted     = "Accepted"
	ConditionResolvedRefs = "ResolvedRefs"
)

// Condition reasons. Accepted, Invalid, Conflicted, TargetNotFound,
// NoMatchingParent, UnsupportedValue, ResolvedRefs, BackendNotFound and
// RefNotPermitted are the Gateway API's; ParentNotFound and MeshNotFound
// are Trellis'.
const (
	ReasonAccepted         = "Accepted"
	ReasonInvalid          = "Invalid"
	ReasonConflicted       = "Conflicted"
	ReasonTargetNotFound   = "TargetNotFound"
	ReasonNoMatchingParent = "NoMatchingParent"
	ReasonUnsupportedValue = "UnsupportedValue"
	ReasonMeshNotFound     = "MeshNotFound"
	ReasonResolvedRefs     = "ResolvedRefs"
	ReasonBackendNotFound  = "BackendNotFound"
	ReasonParentNotFound   = "ParentNotFound"
	ReasonRefNotPermitted  = "RefNotPermitted"
)

// Conditions computes obj's status conditions against the objects l holds,
// the way Gateway API implementations do:
//
//   - Accepted, for every kind: False/Invalid when Validate fails,
//     False/MeshNotFound when obj's mesh is not "default" and no Mesh of
//     that name exists; for routes False/NoMatchingParent when no parentRef
//     resolves to a Service of the route's mesh, False/UnsupportedValue when
//     none of the parents' ports speaks the route's protocol (HTTPRoute:
//     http, http2, grpc; GRPCRoute: grpc, http2; TCPRoute: tcp, kafka,
//     nats); for TrafficPolicies False/Conflicted when an older policy
//     (creationTimestamp, then name; an object not yet stored is the
//     newest) targets one of the same objects, False/TargetNotFound when no
//     target exists. Otherwise True/Accepted.
//   - For AccessPolicies, Accepted is True once valid and in an existing
//     mesh (policies combine, they never conflict); ResolvedRefs is False/
//     BackendNotFound for a missing target Service, a to[].ports entry no
//     found target has, or a from[].service no Service or Dataplane
//     (IdentityService) of its mesh stands for.
//   - ResolvedRefs, for routes, TrafficPolicies, AccessPolicies and
//     Dataplanes: False with
//     the reason of the first unresolved reference (RefNotPermitted for a
//     reference into another mesh, which is never resolved; ParentNotFound,
//     BackendNotFound, TargetNotFound) and a message listing all of them;
//     otherwise True/ResolvedRefs. A backend or outbound reference resolves
//     when the Service exists in the same mesh and has the port.
//
// Unresolved references do not make a document invalid: resources may be
// applied in any order, and status catches up. ObservedGeneration is obj's
// generation; LastTransitionTime is left zero for the caller to set (for
// example with k8s.io/apimachinery/pkg/api/meta.SetStatusCondition).
func Conditions(obj Object, l Lookup) []metav1.Condition {
	c := conds{gen: obj.GetGeneration()}
	if errs := Validate(obj); len(errs) > 0 {
		c.set(ConditionAccepted, false, ReasonInvalid, errs.ToAggregate().Error())
		return c.list
	}
	kind := KindOf(obj)
	if mesh := MeshOf(obj); kind != KindMesh && mesh != DefaultMesh {
		if _, ok := l.Get(KindMesh, "", mesh); !ok {
			c.set(ConditionAccepted, false, ReasonMeshNotFound, fmt.Sprintf("Mesh %q does not exist", mesh))
			return c.list
		}
	}
	r := resolver{l: l, mesh: MeshOf(obj), ns: NamespaceOf(obj)}
	switch o := obj.(type) {
	case *Dataplane:
		c.set(ConditionAccepted, true, ReasonAccepted, "")
		for i, out := range o.Spec.Outbound {
			r.service(fmt.Sprintf("spec.outbound[%d]", i), ReasonBackendNotFound, out.Namespace, out.Service, out.Port, out.Port == 0)
		}
		r.resolvedRefs(&c)
	case *gwv1.HTTPRoute:
		r.route(&c, KindHTTPRoute, o.Spec.ParentRefs, routeBackends(o))
	case *gwv1.GRPCRoute:
		r.route(&c, KindGRPCRoute, o.Spec.ParentRefs, routeBackends(o))
	case *gwv1.TCPRoute:
		r.route(&c, KindTCPRoute, o.Spec.ParentRefs, routeBackends(o))
	case *TrafficPolicy:
		r.policy(&c, o)
	case *AccessPolicy:
		r.accessPolicy(&c, o)
	case *Subscription:
		r.subscription(&c, o)
	default:
		c.set(ConditionAccepted, true, ReasonAccepted, "")
	}
	return c.list
}

type conds struct {
	gen  int64
	list []metav1.Condition
}

func (c *conds) set(typ string, ok bool, reason, msg string) {
	st := metav1.ConditionFalse
	if ok {
		st = metav1.ConditionTrue
	}
	c.list = append(c.list, metav1.Condition{Type: typ, Status: st, Reason: reason, Message: msg, ObservedGeneration: c.gen})
}

// resolver resolves one object's references, collecting problems.
type resolver struct {
	l        Lookup
	mesh, ns string
	reason   string   // of the first problem
	problems []string // every problem, with its field path
}

func (r *resolver) problem(reason, msg string) {
	if r.reason == "" {
		r.reason = reason
	}
	r.problems = append(r.problems, msg)
}

func (r *resolver) resolvedRefs(c *conds) {
	if r.reason == "" {
		c.set(ConditionResolvedRefs, true, ReasonResolvedRefs, "")
		return
	}
	c.set(ConditionResolvedRefs, false, r.reason, strings.Join(r.problems, "; "))
}

// get resolves a reference, reporting it missing (notFound reason) or in
// another mesh (RefNotPermitted).
func (r *resolver) get(path, notFound string, ref Ref) (Object, bool) {
	o, ok := r.l.Get(ref.Kind, ref.Namespace, ref.Name)
	switch {
	case !ok:
		r.problem(notFound, fmt.Sprintf("%s: %s not found", path, ref))
		return nil, false
	case MeshOf(o) != r.mesh:
		r.problem(ReasonRefNotPermitted, fmt.Sprintf("%s: %s is in mesh %q, not %q", path, ref, MeshOf(o), r.mesh))
		return nil, false
	}
	return o, true
}

// service resolves a Service reference with a port (0: any port; anyOne:
// the Service must have exactly one port, as an Outbound without port
// needs).
func (r *resolver) service(path, notFound, ns, name string, port int32, anyOne bool) *Service {
	ref := Ref{Kind: KindService, Namespace: or(ns, r.ns), Name: name}
	o, ok := r.get(path, notFound, ref)
	if !ok {
		return nil
	}
	svc, ok := o.(*Service)
	if !ok {
		r.problem(notFound, fmt.Sprintf("%s: %s is a %T", path, ref, o))
		return nil
	}
	switch {
	case anyOne && len(svc.Spec.Ports) != 1:
		r.problem(notFound, fmt.Sprintf("%s: %s has %d ports: name one with port", path, ref, len(svc.Spec.Ports)))
		return nil
	case port != 0 && !slices.ContainsFunc(svc.Spec.Ports, func(p ServicePort) bool { return p.Port == port }):
		r.problem(notFound, fmt.Sprintf("%s: %s has no port %d", path, ref, port))
		return nil
	}
	return svc
}

// backend is one Service a route sends to, with its field path.
type backend struct {
	path string
	ref  *gwv1.BackendObjectReference
}

// routeProtocols lists the Service port protocols each route kind can
// attach to.
var routeProtocols = map[string][]Protocol{
	KindHTTPRoute: {ProtocolHTTP, ProtocolHTTP2, ProtocolGRPC},
	KindGRPCRoute: {ProtocolGRPC, ProtocolHTTP2},
	KindTCPRoute:  {ProtocolTCP, ProtocolKafka, ProtocolNATS},
}

func (r *resolver) route(c *conds, kind string, parents []gwv1.ParentReference, backends []backend) {
	attached, protoMismatch := 0, ""
	for i, p := range parents {
		path := fmt.Sprintf("spec.parentRefs[%d]", i)
		svc := r.service(path, ReasonParentNotFound, string(deref(p.Namespace)), string(p.Name), 0, false)
		if svc == nil {
			continue
		}
		ports := matchingPorts(svc, p)
		if len(ports) == 0 {
			r.problem(ReasonParentNotFound, fmt.Sprintf("%s: Service %s/%s has no port %s", path, svc.Namespace, svc.Name, portDesc(p)))
			continue
		}
		if !slices.ContainsFunc(ports, func(sp ServicePort) bool { return slices.Contains(routeProtocols[kind], protocolOf(sp)) }) {
			protoMismatch = fmt.Sprintf("%s: no port of Service %s/%s speaks a protocol a %s serves (%s)",
				path, svc.Namespace, svc.Name, kind, quoteAll(protocolStrings(routeProtocols[kind])))
			continue
		}
		attached++
	}
	for _, b := range backends {
		r.service(b.path, ReasonBackendNotFound, string(deref(b.ref.Namespace)), string(b.ref.Name), deref(b.ref.Port), false)
	}
	switch {
	case attached > 0:
		c.set(ConditionAccepted, true, ReasonAccepted, "")
	case protoMismatch != "":
		c.set(ConditionAccepted, false, ReasonUnsupportedValue, protoMismatch)
	default:
		c.set(ConditionAccepted, false, ReasonNoMatchingParent, "no parentRef resolves to a Service of mesh "+fmt.Sprintf("%q", r.mesh))
	}
	r.resolvedRefs(c)
}

func protocolOf(sp ServicePort) Protocol {
	if sp.Protocol == "" {
		return ProtocolHTTP
	}
	return sp.Protocol
}

func protocolStrings(ps []Protocol) []string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = string(p)
	}
	return s
}

// matchingPorts returns the Service ports a parentRef selects by port and
// sectionName (a port name); all of them when it names neither.
func matchingPorts(svc *Service, p gwv1.ParentReference) []ServicePort {
	var out []ServicePort
	for _, sp := range svc.Spec.Ports {
		if p.Port != nil && *p.Port != sp.Port {
			continue
		}
		if p.SectionName != nil && string(*p.SectionName) != sp.Name {
			continue
		}
		out = append(out, sp)
	}
	return out
}

func portDesc(p gwv1.ParentReference) string {
	switch {
	case p.Port != nil && p.SectionName != nil:
		return fmt.Sprintf("%d named %q", *p.Port, *p.SectionName)
	case p.Port != nil:
		return fmt.Sprint(*p.Port)
	}
	return fmt.Sprintf("named %q", deref(p.SectionName))
}

func routeBackends(obj Object) []backend {
	var bs []backend
	add := func(path string, ref *gwv1.BackendObjectReference) { bs = append(bs, backend{path, ref}) }
	switch o := obj.(type) {
	case *gwv1.HTTPRoute:
		for i, rule := range o.Spec.Rules {
			rp := fmt.Sprintf("spec.rules[%d]", i)
			for j, f := range rule.Filters {
				if f.RequestMirror != nil {
					add(fmt.Sprintf("%s.filters[%d].requestMirror.backendRef", rp, j), &f.RequestMirror.BackendRef)
				}
			}
			for j := range rule.BackendRefs {
				b := &rule.BackendRefs[j]
				add(fmt.Sprintf("%s.backendRefs[%d]", rp, j), &b.BackendObjectReference)
				for k, f := range b.Filters {
					if f.RequestMirror != nil {
						add(fmt.Sprintf("%s.backendRefs[%d].filters[%d].requestMirror.backendRef", rp, j, k), &f.RequestMirror.BackendRef)
					}
				}
			}
		}
	case *gwv1.GRPCRoute:
		for i, rule := range o.Spec.Rules {
			rp := fmt.Sprintf("spec.rules[%d]", i)
			for j, f := range rule.Filters {
				if f.RequestMirror != nil {
					add(fmt.Sprintf("%s.filters[%d].requestMirror.backendRef", rp, j), &f.RequestMirror.BackendRef)
				}
			}
			for j := range rule.BackendRefs {
				b := &rule.BackendRefs[j]
				add(fmt.Sprintf("%s.backendRefs[%d]", rp, j), &b.BackendObjectReference)
				for k, f := range b.Filters {
					if f.RequestMirror != nil {
						add(fmt.Sprintf("%s.backendRefs[%d].filters[%d].requestMirror.backendRef", rp, j, k), &f.RequestMirror.BackendRef)
					}
				}
			}
		}
	case *gwv1.TCPRoute:
		for i, rule := range o.Spec.Rules {
			for j := range rule.BackendRefs {
				add(fmt.Sprintf("spec.rules[%d].backendRefs[%d]", i, j), &rule.BackendRefs[j].BackendObjectReference)
			}
		}
	}
	return bs
}

func (r *resolver) policy(c *conds, p *TrafficPolicy) {
	found := 0
	for i, t := range p.Spec.TargetRefs {
		ref := Ref{Kind: string(t.Kind), Namespace: r.ns, Name: string(t.Name)}
		if _, ok := r.get(fmt.Sprintf("spec.targetRefs[%d]", i), ReasonTargetNotFound, ref); ok {
			found++
		}
	}
	if winner, target := olderPolicy(p, r.l); winner != nil {
		c.set(ConditionAccepted, false, ReasonConflicted, fmt.Sprintf("%s %s/%s is also targeted by the older TrafficPolicy %s/%s",
			target.Kind, r.ns, target.Name, winner.Namespace, winner.Name))
	} else if found == 0 {
		c.set(ConditionAccepted, false, ReasonTargetNotFound, "no target exists in mesh "+fmt.Sprintf("%q", r.mesh))
	} else {
		c.set(ConditionAccepted, true, ReasonAccepted, "")
	}
	r.resolvedRefs(c)
}

// olderPolicy finds a TrafficPolicy of p's namespace and mesh that targets
// one of p's targets and is older (Gateway API policy attachment: the
// oldest wins, then the first by name).
func olderPolicy(p *TrafficPolicy, l Lookup) (*TrafficPolicy, gwv1.LocalPolicyTargetReference) {
	ns, mesh := NamespaceOf(p), MeshOf(p)
	var best *TrafficPolicy
	var bestTarget gwv1.LocalPolicyTargetReference
	for _, o := range l.List(KindTrafficPolicy) {
		q, ok := o.(*TrafficPolicy)
		if !ok || NamespaceOf(q) != ns || MeshOf(q) != mesh || q.Name == p.Name || !older(q, p) {
			continue
		}
		for _, t := range p.Spec.TargetRefs {
			if slices.Contains(q.Spec.TargetRefs, t) && (best == nil || older(q, best)) {
				best, bestTarget = q, t
				break
			}
		}
	}
	return best, bestTarget
}

// older orders policies by creationTimestamp, then name; one not yet
// stored (zero timestamp) is newer than every stored one.
func older(a, b *TrafficPolicy) bool {
	ta, tb := created(a), created(b)
	if !ta.Equal(tb) {
		return ta.Before(tb)
	}
	return a.Name < b.Name
}

func created(o Object) time.Time {
	t := o.GetCreationTimestamp().Time
	if t.IsZero() {
		return time.Unix(1<<62, 0)
	}
	return t
}
