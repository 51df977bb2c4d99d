package bridge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// checkTopic validates a topic name for a broker type; wildcards allows
// NATS subject wildcards (subscriptions, not publishes).
func checkTopic(t BrokerType, topic string, wildcards bool) error {
	if topic == "" {
		return errors.New("empty topic")
	}
	switch t {
	case Kafka:
		if len(topic) > 249 || topic == "." || topic == ".." {
			return fmt.Errorf("%q is not a valid Kafka topic name", topic)
		}
		for _, c := range topic {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				return fmt.Errorf("topic %q: character %q not allowed in a Kafka topic (letters, digits, '.', '_', '-')", topic, c)
			}
		}
	case NATS:
		for i, tok := range strings.Split(topic, ".") {
			switch {
			case tok == "":
				return fmt.Errorf("NATS subject %q: empty token", topic)
			case strings.ContainsAny(tok, " \t\r\n"):
				return fmt.Errorf("NATS subject %q: white space", topic)
			case (tok == "*" || tok == ">") && !wildcards:
				return fmt.Errorf("NATS subject %q: wildcards are not allowed here", topic)
			case tok == ">" && i != strings.Count(topic, "."):
				return fmt.Errorf("NATS subject %q: '>' must be the last token", topic)
			}
		}
	case AMQP:
		if len(topic) > 255 {
			return fmt.Errorf("AMQP queue name %q is longer than 255 bytes", topic)
		}
		if strings.HasPrefix(topic, "amq.") {
			return fmt.Errorf("AMQP queue name %q: the amq. prefix is reserved", topic)
		}
	}
	return nil
}

// Errors a broker client wraps so the publish handler picks the status.
var (
	// ErrRefused: the broker answered and did not accept the message
	// (502).
	ErrRefused = errors.New("broker refused the message")
	// ErrUnavailable: the broker could not be reached (503).
	ErrUnavailable = errors.New("broker unavailable")
)

// publishStatus maps a publish error to the HTTP status the application
// gets: 504 for a timeout, 502 for a refusal, 503 otherwise.
func publishStatus(err error) int {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, ErrRefused):
		return http.StatusBadGateway
	default:
		return http.StatusServiceUnavailable
	}
}
