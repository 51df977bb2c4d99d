package v1alpha1

import (
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// kafkaTopicRE is a Kafka topic name (Kafka's own rule: 1-249 of
// [a-zA-Z0-9._-]), here optionally followed by "*" for a prefix.
var kafkaTopicRE = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}\*?$`)

// validateAccessMessaging checks the kafka and nats fields of o; http
// reports whether o sets HTTP fields.
func validateAccessMessaging(o *AccessOperation, http bool, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch {
	case o.Kafka != nil && o.NATS != nil:
		errs = append(errs, field.Invalid(p, "kafka, nats", "kafka and nats exclude each other: write two entries"))
	case (o.Kafka != nil || o.NATS != nil) && http:
		errs = append(errs, field.Invalid(p, "kafka/nats with HTTP fields", "kafka and nats exclude methods, paths, hosts, headers and grpcMethods: write two entries"))
	}
	if k := o.Kafka; k != nil {
		kp := p.Child("kafka")
		tp := kp.Child("topics")
		switch {
		case len(k.Topics) == 0:
			errs = append(errs, field.Required(tp, `at least one topic, prefix ending in "*", or "*"`))
		case len(k.Topics) > maxAccessList:
			errs = append(errs, field.TooMany(tp, len(k.Topics), maxAccessList))
		}
		seen := map[string]bool{}
		for i, t := range k.Topics {
			ip := tp.Index(i)
			switch {
			case t != "*" && !kafkaTopicRE.MatchString(t):
				errs = append(errs, field.Invalid(ip, t, `must be a Kafka topic name (1-249 of a-z, A-Z, 0-9, '.', '_', '-'), optionally ending in "*" for a prefix, or "*"`))
			case seen[t]:
				errs = append(errs, field.Duplicate(ip, t))
			}
			seen[t] = true
		}
		errs = append(errs, enumList(kp.Child("operations"), k.Operations, []KafkaOperation{KafkaProduce, KafkaConsume})...)
	}
	if n := o.NATS; n != nil {
		np := p.Child("nats")
		sp := np.Child("subjects")
		switch {
		case len(n.Subjects) == 0:
			errs = append(errs, field.Required(sp, `at least one subject pattern ("orders.>" for a subtree)`))
		case len(n.Subjects) > maxAccessList:
			errs = append(errs, field.TooMany(sp, len(n.Subjects), maxAccessList))
		}
		seen := map[string]bool{}
		for i, s := range n.Subjects {
			ip := sp.Index(i)
			if msg := natsPattern(s); msg != "" {
				errs = append(errs, field.Invalid(ip, s, msg))
			} else if seen[s] {
				errs = append(errs, field.Duplicate(ip, s))
			}
			seen[s] = true
		}
		errs = append(errs, enumList(np.Child("operations"), n.Operations, []NATSOperation{NATSPublish, NATSSubscribe})...)
	}
	return errs
}

// enumList checks that every entry of l is one of ok, once.
func enumList[T ~string](p *field.Path, l []T, ok []T) field.ErrorList {
	var errs field.ErrorList
	seen := map[T]bool{}
	for i, v := range l {
		ip := p.Index(i)
		known := false
		for _, k := range ok {
			known = known || v == k
		}
		switch {
		case !known:
			errs = append(errs, field.NotSupported(ip, v, ok))
		case seen[v]:
			errs = append(errs, field.Duplicate(ip, v))
		}
		seen[v] = true
	}
	return errs
}

// natsPattern explains why s is not a NATS subject pattern, or returns "".
// Tokens are separated by '.', non-empty, without white space; "*" is a
// whole token, ">" the whole last token.
func natsPattern(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > 1024:
		return "must be at most 1024 characters"
	case strings.ContainsAny(s, " \t\r\n"):
		return "must not contain white space"
	}
	toks := strings.Split(s, ".")
	for i, t := range toks {
		switch {
		case t == "":
			return `must not have an empty token (".." or a '.' at either end)`
		case t == ">" && i != len(toks)-1:
			return `">" must be the last token`
		case t != "*" && t != ">" && strings.ContainsAny(t, "*>"):
			return `"*" and ">" must be whole tokens ("orders.*", not "orders*")`
		}
	}
	return ""
}
