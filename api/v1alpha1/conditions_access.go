package v1alpha1

import (
	"fmt"
	"slices"
)

// accessPolicy computes an AccessPolicy's conditions. Policies never
// conflict, so a valid one in an existing mesh is always Accepted;
// ResolvedRefs reports targets that are missing (BackendNotFound) or in
// another mesh (RefNotPermitted), ports no found target has, and source
// services no Service or Dataplane of their mesh stands for.
func (r *resolver) accessPolicy(c *conds, p *AccessPolicy) {
	c.set(ConditionAccepted, true, ReasonAccepted, "")
	var targets []*Service
	for i, t := range p.Spec.TargetRefs {
		if svc := r.service(fmt.Sprintf("spec.targetRefs[%d]", i), ReasonBackendNotFound, "", string(t.Name), 0, false); svc != nil {
			targets = append(targets, svc)
		}
	}
	var identities map[[2]string]bool // {mesh, service} of every Service and Dataplane
	for i, rule := range p.Spec.Rules {
		for j, from := range rule.From {
			if from.Service == "" {
				continue
			}
			mesh := or(from.Mesh, r.mesh)
			path := fmt.Sprintf("spec.rules[%d].from[%d]", i, j)
			if mesh != DefaultMesh {
				if _, ok := r.l.Get(KindMesh, "", mesh); !ok {
					r.problem(ReasonBackendNotFound, fmt.Sprintf("%s: Mesh %q does not exist", path, mesh))
					continue
				}
			}
			if identities == nil {
				identities = r.identities()
			}
			if !identities[[2]string{mesh, from.Service}] {
				r.problem(ReasonBackendNotFound, fmt.Sprintf("%s: no Service or Dataplane of mesh %q has the identity service %q", path, mesh, from.Service))
			}
		}
		if len(targets) == 0 {
			continue // the missing targets are reported already
		}
		for j, to := range rule.To {
			for k, port := range to.Ports {
				if !slices.ContainsFunc(targets, func(s *Service) bool {
					return slices.ContainsFunc(s.Spec.Ports, func(sp ServicePort) bool { return sp.Port == port })
				}) {
					r.problem(ReasonBackendNotFound, fmt.Sprintf("spec.rules[%d].to[%d].ports[%d]: no target Service has port %d", i, j, k, port))
				}
			}
		}
	}
	r.resolvedRefs(c)
}

// identities lists the identity services that exist, by mesh: every
// Service's name and every Dataplane's IdentityService.
func (r *resolver) identities() map[[2]string]bool {
	ids := map[[2]string]bool{}
	for _, o := range r.l.List(KindService) {
		ids[[2]string{MeshOf(o), o.GetName()}] = true
	}
	for _, o := range r.l.List(KindDataplane) {
		if dp, ok := o.(*Dataplane); ok {
			ids[[2]string{MeshOf(dp), IdentityService(dp)}] = true
		}
	}
	return ids
}
