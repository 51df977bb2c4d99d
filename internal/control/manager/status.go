package manager

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

// ControllerName is the Gateway API controller name Trellis writes in route
// and policy status.
const ControllerName gwv1.GatewayController = "trellis.dev/control-plane"

// setStatus fills obj's status from the current resources. A Dataplane keeps
// the status the control plane stored (its proxy's connection and xDS
// answers) plus the computed conditions that are not about the connection.
func setStatus(obj v1alpha1.Object, l v1alpha1.Lookup) {
	conds := v1alpha1.Conditions(obj, l)
	gen := obj.GetGeneration()
	for i := range conds {
		conds[i].ObservedGeneration = gen
		if conds[i].LastTransitionTime.IsZero() {
			// Conditions are computed on read, so the last transition
			// Trellis can vouch for is the object's own creation (Kubernetes
			// requires the field).
			conds[i].LastTransitionTime = obj.GetCreationTimestamp()
		}
	}
	switch o := obj.(type) {
	case *v1alpha1.Mesh:
		o.Status = v1alpha1.Status{ObservedGeneration: gen, Conditions: conds}
	case *v1alpha1.Service:
		o.Status = v1alpha1.Status{ObservedGeneration: gen, Conditions: conds}
	case *v1alpha1.AccessPolicy:
		o.Status = v1alpha1.Status{ObservedGeneration: gen, Conditions: conds}
	case *v1alpha1.Broker:
		o.Status = v1alpha1.Status{ObservedGeneration: gen, Conditions: conds}
	case *v1alpha1.Subscription:
		o.Status = v1alpha1.Status{ObservedGeneration: gen, Conditions: conds}
	case *v1alpha1.Dataplane:
		for _, c := range conds {
			setCondition(&o.Status.Conditions, c)
		}
	case *v1alpha1.TrafficPolicy:
		o.Status = gwv1.PolicyStatus{}
		for _, ref := range o.Spec.TargetRefs {
			o.Status.Ancestors = append(o.Status.Ancestors, gwv1.PolicyAncestorStatus{
				AncestorRef:    gwv1.ParentReference{Group: ptr(ref.Group), Kind: ptr(ref.Kind), Name: ref.Name},
				ControllerName: ControllerName,
				Conditions:     conds,
			})
		}
	case *gwv1.HTTPRoute:
		o.Status.Parents = parentStatus(o.Spec.ParentRefs, conds)
	case *gwv1.GRPCRoute:
		o.Status.Parents = parentStatus(o.Spec.ParentRefs, conds)
	case *gwv1.TCPRoute:
		o.Status.Parents = parentStatus(o.Spec.ParentRefs, conds)
	}
}

func parentStatus(refs []gwv1.ParentReference, conds []metav1.Condition) []gwv1.RouteParentStatus {
	out := make([]gwv1.RouteParentStatus, 0, len(refs))
	for _, ref := range refs {
		out = append(out, gwv1.RouteParentStatus{ParentRef: ref, ControllerName: ControllerName, Conditions: conds})
	}
	return out
}

// setCondition replaces the condition of c's type, or adds it.
func setCondition(conds *[]metav1.Condition, c metav1.Condition) {
	for i := range *conds {
		if (*conds)[i].Type == c.Type {
			if (*conds)[i].Status == c.Status {
				c.LastTransitionTime = (*conds)[i].LastTransitionTime
			}
			(*conds)[i] = c
			return
		}
	}
	*conds = append(*conds, c)
}

func ptr[T any](v T) *T { return &v }
