package v1alpha1

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

var kafkaTopic = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

func validateBrokerSpec(s *BrokerSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch s.Type {
	case BrokerKafka, BrokerNATS, BrokerAMQP:
	case "":
		errs = append(errs, field.Required(p.Child("type"), "kafka, nats or amqp"))
	default:
		errs = append(errs, field.NotSupported(p.Child("type"), s.Type, []BrokerType{BrokerKafka, BrokerNATS, BrokerAMQP}))
	}
	if len(s.Addresses) == 0 {
		errs = append(errs, field.Required(p.Child("addresses"), "at least one"))
	}
	for i, a := range s.Addresses {
		ap := p.Child("addresses").Index(i)
		switch s.Type {
		case BrokerAMQP:
			if u, err := url.Parse(a); err != nil || (u.Scheme != "amqp" && u.Scheme != "amqps") || u.Host == "" {
				errs = append(errs, field.Invalid(ap, a, "must be an amqp:// or amqps:// URL"))
			}
		case BrokerNATS:
			if strings.Contains(a, "://") {
				if u, err := url.Parse(a); err != nil || u.Host == "" || (u.Scheme != "nats" && u.Scheme != "tls") {
					errs = append(errs, field.Invalid(ap, a, "must be nats://host:port, tls://host:port or host:port"))
				}
			} else if !hostPort(a) {
				errs = append(errs, field.Invalid(ap, a, "must be nats://host:port, tls://host:port or host:port"))
			}
		default:
			if !hostPort(a) {
				errs = append(errs, field.Invalid(ap, a, "must be host:port"))
			}
		}
	}
	if s.NATS != nil && s.Type != BrokerNATS {
		errs = append(errs, field.Forbidden(p.Child("nats"), "only for type nats"))
	}
	if c := s.Credentials; c != nil {
		errs = append(errs, absFile(p.Child("credentials", "usernameFile"), c.UsernameFile, true)...)
		errs = append(errs, absFile(p.Child("credentials", "passwordFile"), c.PasswordFile, true)...)
	}
	if t := s.TLS; t != nil {
		tp := p.Child("tls")
		errs = append(errs, absFile(tp.Child("caFile"), t.CAFile, false)...)
		errs = append(errs, absFile(tp.Child("certFile"), t.CertFile, false)...)
		errs = append(errs, absFile(tp.Child("keyFile"), t.KeyFile, false)...)
		if (t.CertFile == "") != (t.KeyFile == "") {
			errs = append(errs, field.Required(tp.Child("keyFile"), "certFile and keyFile go together"))
		}
	}
	return errs
}

// validateDataplaneBridge checks a Dataplane's spec.bridge.
func validateDataplaneBridge(b *DataplaneBridge, p *field.Path) field.ErrorList {
	if b == nil {
		return nil
	}
	return port(p.Child("port"), b.Port)
}

func hostPort(a string) bool {
	i := strings.LastIndexByte(a, ':')
	if i <= 0 || i == len(a)-1 {
		return false
	}
	for _, c := range a[i+1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func absFile(p *field.Path, v string, required bool) field.ErrorList {
	switch {
	case v == "" && required:
		return field.ErrorList{field.Required(p, "an absolute path on the sidecar's host")}
	case v != "" && !filepath.IsAbs(v):
		return field.ErrorList{field.Invalid(p, v, "must be an absolute path")}
	}
	return nil
}

func validateSubscriptionSpec(s *SubscriptionSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.BrokerRef.Name == "" {
		errs = append(errs, field.Required(p.Child("brokerRef", "name"), ""))
	}
	if s.TargetRef.Name == "" {
		errs = append(errs, field.Required(p.Child("targetRef", "name"), "the Service whose instances consume"))
	}
	errs = append(errs, validateTopic(p.Child("topic"), s.Topic)...)
	if s.DeadLetter != nil {
		tp := p.Child("deadLetter", "topic")
		errs = append(errs, validateTopic(tp, s.DeadLetter.Topic)...)
		if strings.ContainsAny(s.DeadLetter.Topic, "*>") {
			errs = append(errs, field.Invalid(tp, s.DeadLetter.Topic, "must not contain wildcards"))
		}
		if s.DeadLetter.Topic == s.Topic {
			errs = append(errs, field.Invalid(tp, s.DeadLetter.Topic, "must differ from spec.topic"))
		}
	}
	if strings.ContainsAny(s.ConsumerGroup, " \t\r\n.*>") {
		errs = append(errs, field.Invalid(p.Child("consumerGroup"), s.ConsumerGroup, "must not contain white space, '.', '*' or '>'"))
	}
	errs = append(errs, optPort(p.Child("port"), s.Port)...)
	if s.Path != "" {
		if u, err := url.Parse(s.Path); err != nil || !strings.HasPrefix(s.Path, "/") || u.Host != "" {
			errs = append(errs, field.Invalid(p.Child("path"), s.Path, "must be an absolute path starting with /"))
		}
	}
	if s.Concurrency < 0 || s.Concurrency > 1024 {
		errs = append(errs, field.Invalid(p.Child("concurrency"), s.Concurrency, "must be between 1 and 1024 (0: default 1)"))
	}
	if r := s.Retry; r != nil {
		rp := p.Child("retry")
		if r.MaxDeliveries < 0 || r.MaxDeliveries > 1000 {
			errs = append(errs, field.Invalid(rp.Child("maxDeliveries"), r.MaxDeliveries, "must be between 1 and 1000 (0: default 5)"))
		}
		if b := r.Backoff; b != nil {
			errs = append(errs, positive(rp.Child("backoff", "base"), b.Base)...)
			errs = append(errs, positive(rp.Child("backoff", "max"), b.Max)...)
			if b.Base != nil && b.Max != nil && b.Max.Duration < b.Base.Duration {
				errs = append(errs, field.Invalid(rp.Child("backoff", "max"), b.Max.Duration.String(), fmt.Sprintf("must not be below base (%v)", b.Base.Duration)))
			}
		}
	}
	errs = append(errs, positive(p.Child("deliveryTimeout"), s.DeliveryTimeout)...)
	return errs
}

// validateTopic checks what every broker type accepts; the broker's own
// rules (Kafka's character set) are checked against the Broker in
// Conditions.
func validateTopic(p *field.Path, t string) field.ErrorList {
	switch {
	case t == "":
		return field.ErrorList{field.Required(p, "")}
	case len(t) > 255:
		return field.ErrorList{field.TooLong(p, t, 255)}
	case strings.ContainsAny(t, " \t\r\n"):
		return field.ErrorList{field.Invalid(p, t, "must not contain white space")}
	}
	return nil
}

// topicProblem reports a topic the broker type does not accept, or "".
func topicProblem(t BrokerType, topic string) string {
	switch {
	case t == BrokerKafka && !kafkaTopic.MatchString(topic):
		return "not a Kafka topic name (letters, digits, '.', '_', '-')"
	case t == BrokerNATS && (strings.HasPrefix(topic, ".") || strings.HasSuffix(topic, ".") || strings.Contains(topic, "..")):
		return "not a NATS subject (empty token)"
	case t == BrokerAMQP && strings.HasPrefix(topic, "amq."):
		return "the amq. prefix is reserved in AMQP"
	}
	return ""
}
