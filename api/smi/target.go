package smi

import (
	"errors"
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

// KindServiceAccount is the only identity kind a TrafficTarget may name.
const KindServiceAccount = "ServiceAccount"

// convertTarget translates a TrafficTarget to one ALLOW AccessPolicy of the
// same name, namespace and labels. See Convert.
func convertTarget(tt *TrafficTarget, l v1alpha1.Lookup, find func(kind, ns, name string) v1alpha1.Object) (*v1alpha1.AccessPolicy, error) {
	ns := namespace(tt)
	d := tt.Spec.Destination
	switch {
	case d.Kind != KindServiceAccount:
		return nil, fmt.Errorf("spec.destination.kind: Unsupported value: %q: supported values: %q", d.Kind, KindServiceAccount)
	case d.Name == "":
		return nil, errors.New("spec.destination.name: Required value")
	case d.Namespace != "" && d.Namespace != ns:
		return nil, fmt.Errorf("spec.destination.namespace: Invalid value: %q: must be the TrafficTarget's namespace %q", d.Namespace, ns)
	case len(tt.Spec.Sources) == 0:
		return nil, errors.New("spec.sources: Required value: at least one ServiceAccount")
	}
	var from []v1alpha1.AccessSource
	for i, s := range tt.Spec.Sources {
		if s.Kind != KindServiceAccount {
			return nil, fmt.Errorf("spec.sources[%d].kind: Unsupported value: %q: supported values: %q", i, s.Kind, KindServiceAccount)
		}
		if s.Name == "" {
			return nil, fmt.Errorf("spec.sources[%d].name: Required value", i)
		}
		from = append(from, v1alpha1.AccessSource{Service: s.Name})
	}
	to, err := targetOperations(tt, ns, find)
	if err != nil {
		return nil, err
	}
	var refs []gwv1.LocalPolicyTargetReference
	for _, name := range destinationServices(d.Name, ns, v1alpha1.MeshOf(tt), l) {
		refs = append(refs, gwv1.LocalPolicyTargetReference{Group: "", Kind: v1alpha1.KindService, Name: gwv1.ObjectName(name)})
	}
	return &v1alpha1.AccessPolicy{
		TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindAccessPolicy},
		ObjectMeta: metav1.ObjectMeta{
			Name: tt.Name, Namespace: ns, Labels: tt.Labels,
			Annotations: map[string]string{v1alpha1.ConvertedFromAnnotation: tt.APIVersion + "/" + KindTrafficTarget + "/" + tt.Name},
		},
		Spec: v1alpha1.AccessPolicySpec{
			TargetRefs: refs,
			Action:     v1alpha1.AccessAllow,
			Rules:      []v1alpha1.AccessRule{{From: from, To: to}},
		},
	}, nil
}

// destinationServices names the Services of namespace ns and mesh whose
// selectors pick at least one Dataplane with the identity service id, in
// name order; without any, the Service named id.
func destinationServices(id, ns, mesh string, l v1alpha1.Lookup) []string {
	var dps []*v1alpha1.Dataplane
	for _, o := range l.List(v1alpha1.KindDataplane) {
		if dp, ok := o.(*v1alpha1.Dataplane); ok && v1alpha1.MeshOf(dp) == mesh && v1alpha1.IdentityService(dp) == id {
			dps = append(dps, dp)
		}
	}
	var names []string
	for _, o := range l.List(v1alpha1.KindService) {
		svc, ok := o.(*v1alpha1.Service)
		if !ok || v1alpha1.NamespaceOf(svc) != ns || v1alpha1.MeshOf(svc) != mesh || len(svc.Spec.Selector) == 0 {
			continue
		}
		if slices.ContainsFunc(dps, func(dp *v1alpha1.Dataplane) bool { return v1alpha1.Selects(svc.Spec.Selector, dp.Labels) }) {
			names = append(names, svc.Name)
		}
	}
	if len(names) == 0 {
		return []string{id}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// targetOperations turns a TrafficTarget's rules into AccessPolicy
// operations; nil means every request (no rules, or a rule that restricts
// nothing).
func targetOperations(tt *TrafficTarget, ns string, find func(kind, ns, name string) v1alpha1.Object) ([]v1alpha1.AccessOperation, error) {
	var to []v1alpha1.AccessOperation
	for i, r := range tt.Spec.Rules {
		p := fmt.Sprintf("spec.rules[%d]", i)
		var ops []v1alpha1.AccessOperation
		switch r.Kind {
		case KindHTTPRouteGroup:
			g, ok := find(KindHTTPRouteGroup, ns, r.Name).(*HTTPRouteGroup)
			if !ok {
				return nil, fmt.Errorf("%s: HTTPRouteGroup %s/%s not found: Trellis does not store HTTPRouteGroups, apply it in the same batch as the TrafficTarget", p, ns, r.Name)
			}
			matches, err := namedMatches(g, r.Matches, p)
			if err != nil {
				return nil, err
			}
			for _, m := range matches {
				ops = append(ops, httpOperation(m))
			}
		case KindTCPRoute:
			rt, ok := find(KindTCPRoute, ns, r.Name).(*TCPRoute)
			if !ok {
				return nil, fmt.Errorf("%s: SMI TCPRoute %s/%s not found: Trellis does not store SMI TCPRoutes, apply it in the same batch as the TrafficTarget", p, ns, r.Name)
			}
			op := v1alpha1.AccessOperation{}
			for _, port := range rt.Spec.Matches.Ports {
				op.Ports = append(op.Ports, int32(port))
			}
			ops = append(ops, op)
		default:
			return nil, fmt.Errorf("%s.kind: Unsupported value: %q: supported values: %q, %q", p, r.Kind, KindHTTPRouteGroup, KindTCPRoute)
		}
		for _, op := range ops {
			if isEmpty(op) {
				return nil, nil // this rule allows every request
			}
		}
		to = append(to, ops...)
	}
	return to, nil
}

// namedMatches returns the group's matches a rule names (all of them when
// it names none).
func namedMatches(g *HTTPRouteGroup, names []string, p string) ([]HTTPMatch, error) {
	if len(names) == 0 {
		return g.Spec.Matches, nil
	}
	var out []HTTPMatch
	for j, n := range names {
		k := slices.IndexFunc(g.Spec.Matches, func(m HTTPMatch) bool { return m.Name == n })
		if k < 0 {
			return nil, fmt.Errorf("%s.matches[%d]: HTTPRouteGroup %s/%s has no match named %q", p, j, namespace(g), g.Name, n)
		}
		out = append(out, g.Spec.Matches[k])
	}
	return out, nil
}

// httpOperation translates one SMI HTTP match: methods (none for "*"),
// pathRegex as a regex path match, headers as regex header matches.
func httpOperation(m HTTPMatch) v1alpha1.AccessOperation {
	var op v1alpha1.AccessOperation
	if !slices.Contains(m.Methods, "*") {
		op.Methods = slices.Clone(m.Methods)
	}
	if m.PathRegex != "" {
		op.Paths = []v1alpha1.AccessPathMatch{{Regex: m.PathRegex}}
	}
	names := make([]string, 0, len(m.Headers))
	for k := range m.Headers {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		op.Headers = append(op.Headers, v1alpha1.AccessHeaderMatch{Name: k, Regex: m.Headers[k]})
	}
	return op
}

func isEmpty(op v1alpha1.AccessOperation) bool {
	return len(op.Ports)+len(op.Methods)+len(op.Paths)+len(op.Hosts)+len(op.Headers)+len(op.GRPCMethods) == 0
}
