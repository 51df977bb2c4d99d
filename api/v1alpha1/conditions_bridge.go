package v1alpha1

import "fmt"

// subscription sets a Subscription's conditions: Accepted, and
// ResolvedRefs False/BackendNotFound when its Broker or target Service is
// missing (RefNotPermitted in another mesh) or its topics are not names
// the Broker's type accepts.
func (r *resolver) subscription(c *conds, s *Subscription) {
	c.set(ConditionAccepted, true, ReasonAccepted, "")
	if o, ok := r.get("spec.brokerRef", ReasonBackendNotFound, Ref{Kind: KindBroker, Namespace: r.ns, Name: s.Spec.BrokerRef.Name}); ok {
		if b, isBroker := o.(*Broker); isBroker {
			if p := topicProblem(b.Spec.Type, s.Spec.Topic); p != "" {
				r.problem(ReasonUnsupportedValue, fmt.Sprintf("spec.topic: %q: %s", s.Spec.Topic, p))
			}
			if s.Spec.DeadLetter != nil {
				if p := topicProblem(b.Spec.Type, s.Spec.DeadLetter.Topic); p != "" {
					r.problem(ReasonUnsupportedValue, fmt.Sprintf("spec.deadLetter.topic: %q: %s", s.Spec.DeadLetter.Topic, p))
				}
			}
		}
	}
	r.service("spec.targetRef", ReasonBackendNotFound, "", s.Spec.TargetRef.Name, s.Spec.Port, false)
	r.resolvedRefs(c)
}
