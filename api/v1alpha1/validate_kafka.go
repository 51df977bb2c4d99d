package v1alpha1

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// DefaultMaxBrokerID is OutboundKafka.MaxBrokerID when it is 0.
const DefaultMaxBrokerID = 15

// BrokerPorts returns the first and last local port k reserves for
// brokers.
func (k *OutboundKafka) BrokerPorts() (first, last int32) {
	max := k.MaxBrokerID
	if max == 0 {
		max = DefaultMaxBrokerID
	}
	return k.BrokerPortBase, k.BrokerPortBase + max
}

// validateDataplaneKafka checks the Kafka broker fields of s: broker ids
// of inbounds, and outbound broker port ranges, which must not overlap
// each other or any other local port (shared: inbound ports are local
// too).
func validateDataplaneKafka(s *DataplaneSpec, shared bool, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, in := range s.Inbound {
		if id := in.KafkaBrokerID; id != nil && (*id < 0 || *id > 65534) {
			errs = append(errs, field.Invalid(p.Child("inbound").Index(i).Child("kafkaBrokerID"), *id, "must be between 0 and 65534, inclusive"))
		}
	}
	// Every single local port but the outbounds' broker ranges.
	used := map[int32]string{}
	for i, out := range s.Outbound {
		used[out.LocalPort] = fmt.Sprintf("spec.outbound[%d].localPort", i)
	}
	if s.OutboundHTTPPort != 0 {
		used[s.OutboundHTTPPort] = "spec.outboundHTTPPort"
	}
	if s.Bridge != nil && s.Bridge.Port != 0 {
		used[s.Bridge.Port] = "spec.bridge.port"
	}
	if shared {
		for i, in := range s.Inbound {
			used[in.Port] = fmt.Sprintf("spec.inbound[%d].port (on a loopback address)", i)
		}
	}
	type span struct {
		first, last int32
		path        string
	}
	var spans []span
	for i, out := range s.Outbound {
		k := out.Kafka
		if k == nil {
			continue
		}
		kp := p.Child("outbound").Index(i).Child("kafka")
		bad := false
		if k.BrokerPortBase == 0 {
			errs = append(errs, field.Required(kp.Child("brokerPortBase"), "the local port of broker id 0"))
			bad = true
		} else if e := port(kp.Child("brokerPortBase"), k.BrokerPortBase); len(e) > 0 {
			errs, bad = append(errs, e...), true
		}
		if k.MaxBrokerID < 0 || k.MaxBrokerID > 1023 {
			errs = append(errs, field.Invalid(kp.Child("maxBrokerID"), k.MaxBrokerID, "must be between 0 (default 15) and 1023, inclusive"))
			bad = true
		}
		if bad {
			continue
		}
		first, last := k.BrokerPorts()
		if last > 65535 {
			errs = append(errs, field.Invalid(kp, fmt.Sprintf("%d-%d", first, last), "brokerPortBase+maxBrokerID must be at most 65535"))
			continue
		}
		for pt := first; pt <= last; pt++ {
			if who, ok := used[pt]; ok {
				errs = append(errs, field.Invalid(kp, fmt.Sprintf("%d-%d", first, last), fmt.Sprintf("broker ports clash with %s (%d)", who, pt)))
				break
			}
		}
		for _, o := range spans {
			if first <= o.last && o.first <= last {
				errs = append(errs, field.Invalid(kp, fmt.Sprintf("%d-%d", first, last), fmt.Sprintf("broker ports overlap %s (%d-%d)", o.path, o.first, o.last)))
				break
			}
		}
		spans = append(spans, span{first, last, kp.String()})
	}
	return errs
}
