package translator

import (
	"slices"

	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

// AccessPolicies on broker ports (docs/messaging.md, "Topic and subject
// policy"). A `to` entry with kafka or nats fields is decided per request
// by the protocol filter on the serving sidecar's inbound, where the
// source is the verified peer certificate; the RBAC network filter before
// it decides whole connections as for any TCP port:
//
//   - ALLOW: the connection is admitted (the filter narrows it to the
//     topics or subjects);
//   - DENY: the connection is not refused (the filter refuses the
//     requests);
//   - AUDIT: the connection is not reported (the filter reports the
//     requests: its AUDIT rules never decide).
//
// An entry with kafka fields matches nothing on a port that is not kafka,
// nor one with nats fields on a port that is not nats.
//
// The filter's policy keeps the RBAC order: the AUDIT rules (of entries
// naming topics or subjects; they only report), the rules of every DENY
// policy, then those of every ALLOW policy (first match decides),
// then the default: DENY when an ALLOW engine exists (some ALLOW policy
// targets the port's Services, or the mesh's default is DENY), else
// ALLOW. Rules without kafka or nats fields become rules over every topic
// or subject, so that an ALLOW policy admitting whole connections keeps
// admitting every request under the DENY default.

// kafkaPolicyFilterName is Trellis' Kafka topic policy filter, which
// follows kafka_broker in a chain.
const kafkaPolicyFilterName = "trellis.filters.network.kafka_policy"

// kafkaPolicyTypeURL is the kafka_policy filter's config type, inside a
// TypedStruct (internal/proxy/kafkabroker.PolicyTypeURL).
const kafkaPolicyTypeURL = "type.googleapis.com/trellis.filters.network.kafka.v1.TopicPolicy"

// messagingPermission is the connection-level permission of a `to` entry
// with kafka or nats fields on a port of protocol proto.
func messagingPermission(o *v1alpha1.AccessOperation, proto v1alpha1.Protocol, action v1alpha1.AccessAction) (*rbacv3.Permission, bool) {
	if !entryFor(o, proto) || action != v1alpha1.AccessAllow {
		return nil, false
	}
	return anyPermission(), true
}

// entryFor reports whether the kafka or nats fields of o are those of
// proto.
func entryFor(o *v1alpha1.AccessOperation, proto v1alpha1.Protocol) bool {
	return o.Kafka != nil && proto == v1alpha1.ProtocolKafka || o.NATS != nil && proto == v1alpha1.ProtocolNATS
}

// messagingPolicy returns the protocol filters of port sp (protocol
// proto) of s carrying the policy of pols, or nil when no rule of pols
// names topics or subjects of proto on that port.
func (a *access) messagingPolicy(sec *security, pols []*v1alpha1.AccessPolicy, s *service, sp int32, proto v1alpha1.Protocol) []*listenerv3.Filter {
	kafka := proto == v1alpha1.ProtocolKafka
	var rules []*structpb.Value
	named := false
	for _, action := range []v1alpha1.AccessAction{v1alpha1.AccessAudit, v1alpha1.AccessDeny, v1alpha1.AccessAllow} {
		for _, p := range pols {
			if p.Spec.Action != action {
				continue
			}
			for i := range p.Spec.Rules {
				r := &p.Spec.Rules[i]
				principals := a.principalNames(sec, p, r, kafka)
				if len(principals) == 0 {
					continue
				}
				to := r.To
				if len(to) == 0 {
					to = []v1alpha1.AccessOperation{{}}
				}
				for j := range to {
					ops, names, ok := filterScope(&to[j], sp, proto, action)
					if !ok || action == v1alpha1.AccessAudit && to[j].Kafka == nil && to[j].NATS == nil {
						continue // connection-wide audits are the RBAC filter's shadow rules
					}
					named = named || to[j].Kafka != nil || to[j].NATS != nil
					field := "subjects"
					if kafka {
						field = "topics"
					}
					rules = append(rules, structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
						"action":     structpb.NewStringValue(string(action)),
						"operations": stringList(ops),
						field:        stringList(names),
						"principals": stringList(principals),
					}}))
				}
			}
		}
	}
	if !named {
		return nil
	}
	def := v1alpha1.AccessAllow
	if a.allow != nil {
		def = v1alpha1.AccessDeny
	}
	prefix := messagingStatPrefix(s.key, sp, true)
	if kafka {
		ts := &xdstypev3.TypedStruct{TypeUrl: kafkaPolicyTypeURL, Value: &structpb.Struct{Fields: map[string]*structpb.Value{
			"rules":          structpb.NewListValue(&structpb.ListValue{Values: rules}),
			"default_action": structpb.NewStringValue(string(def)),
		}}}
		return []*listenerv3.Filter{
			kafkaFilter(prefix),
			{Name: kafkaPolicyFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(ts)}},
		}
	}
	ts := &xdstypev3.TypedStruct{TypeUrl: natsTypeURL, Value: &structpb.Struct{Fields: map[string]*structpb.Value{
		"stat_prefix":    structpb.NewStringValue(prefix),
		"policies":       structpb.NewListValue(&structpb.ListValue{Values: rules}),
		"default_action": structpb.NewStringValue(string(def)),
	}}}
	return []*listenerv3.Filter{{Name: natsFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(ts)}}}
}

// filterScope is what a `to` entry o of a policy with action covers in
// the protocol filter of port sp (protocol proto): its operations and
// topics or subjects. ok is false when it covers nothing there: other
// ports, the other protocol's fields, or HTTP fields in an ALLOW policy
// (they allow no connection on a broker port; in a DENY policy they are
// dropped, as the RBAC filter does, and cover everything).
func filterScope(o *v1alpha1.AccessOperation, sp int32, proto v1alpha1.Protocol, action v1alpha1.AccessAction) (ops, names []string, ok bool) {
	if len(o.Ports) > 0 && !slices.Contains(o.Ports, sp) {
		return nil, nil, false
	}
	kafka := proto == v1alpha1.ProtocolKafka
	switch {
	case o.Kafka != nil || o.NATS != nil:
		if !entryFor(o, proto) {
			return nil, nil, false
		}
		if kafka {
			for _, op := range o.Kafka.Operations {
				ops = append(ops, string(op))
			}
			if len(ops) == 0 {
				ops = []string{string(v1alpha1.KafkaProduce), string(v1alpha1.KafkaConsume)}
			}
			return ops, o.Kafka.Topics, true
		}
		for _, op := range o.NATS.Operations {
			ops = append(ops, string(op))
		}
		if len(ops) == 0 {
			ops = []string{string(v1alpha1.NATSPublish), string(v1alpha1.NATSSubscribe)}
		}
		return ops, o.NATS.Subjects, true
	case len(o.Methods)+len(o.Paths)+len(o.Hosts)+len(o.Headers)+len(o.GRPCMethods) > 0 && action == v1alpha1.AccessAllow:
		return nil, nil, false
	}
	if kafka {
		return []string{"produce", "consume", "describe"}, []string{"*"}, true
	}
	return []string{"publish", "subscribe"}, []string{">"}, true
}

// sourceID is the SPIFFE ID of the service source f of a policy of mesh,
// noting a source of another mesh (its trust bundle is then needed).
func (a *access) sourceID(sec *security, mesh string, f *v1alpha1.AccessSource) string {
	m := cmpOr(f.Mesh, mesh)
	td := sec.trustDomains[m]
	if td == "" {
		td = v1alpha1.TrustDomainOf(m, nil)
	}
	if m != mesh {
		a.foreign[m] = true
	}
	return "spiffe://" + td + "/" + m + "/" + f.Service
}

// principalNames are the sources of r (of policy p) as the protocol
// filters name them: a SPIFFE ID, "spiffe://*" for any authenticated
// peer, "*" (Kafka) or "any" (NATS) for everyone, CIDRs.
func (a *access) principalNames(sec *security, p *v1alpha1.AccessPolicy, r *v1alpha1.AccessRule, kafka bool) []string {
	mesh := v1alpha1.MeshOf(p)
	var out []string
	for _, f := range r.From {
		switch {
		case f.Service != "":
			out = append(out, a.sourceID(sec, mesh, &f))
		case f.AnyAuthenticated:
			out = append(out, "spiffe://*")
		case f.Any:
			if kafka {
				out = append(out, "*")
			} else {
				out = append(out, "any")
			}
		default:
			out = append(out, f.IPBlocks...)
		}
	}
	return out
}

func stringList(l []string) *structpb.Value {
	vs := make([]*structpb.Value, len(l))
	for i, s := range l {
		vs[i] = structpb.NewStringValue(s)
	}
	return structpb.NewListValue(&structpb.ListValue{Values: vs})
}
