// Package kafkabroker is Envoy's envoy.filters.network.kafka_broker with
// Trellis' topic policy (trellis.filters.network.kafka_policy): it parses
// the Kafka protocol on a connection that tcp_proxy carries to a broker,
// counts requests, responses, errors, latency and per-topic traffic,
// rewrites the broker addresses in responses to the addresses the proxy
// serves, refuses API keys, and answers requests on refused topics with
// TOPIC_AUTHORIZATION_FAILED.
//
// A Filter is built once per snapshot and is immutable; Wrap is called
// once per connection and returns the connection tcp_proxy then reads
// from and writes to.
package kafkabroker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	kafkav3 "github.com/envoyproxy/go-control-plane/contrib/envoy/extensions/filters/network/kafka_broker/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/trellis-mesh/trellis/internal/messaging/kafka"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
)

// PolicyTypeURL is the type_url, inside an xds.type.v3.TypedStruct, of
// Trellis' Kafka topic policy filter (trellis.filters.network.kafka_policy).
const PolicyTypeURL = "type.googleapis.com/trellis.filters.network.kafka.v1.TopicPolicy"

// MaxVersions are the highest Produce and Fetch versions the filter lets
// clients negotiate: the last ones that name topics (v13 names them by
// topic id only, which the policy and the per-topic metrics cannot read).
var MaxVersions = map[int16]int16{0: 12, 1: 12}

// Config is a parsed kafka_broker filter, with the kafka_policy that
// follows it in the chain, if any.
type Config struct {
	StatPrefix string
	Rewrite    kafka.Rewrite
	// allowed and denied are the API key lists; nil means no list.
	allowed, denied map[int16]bool
	// Policy is the topic policy; nil allows everything.
	Policy *kafka.Policy
	// MaxFrameBytes bounds a frame in either direction.
	MaxFrameBytes int
	// Trace injects traceparent headers into produced records (a
	// kafka_trace filter with inject_traceparent); nil injects nothing.
	Trace    *kafka.Tracer
	traceSet bool
}

// ParseBroker translates a KafkaBroker. Errors name fields below it.
func ParseBroker(pb *kafkav3.KafkaBroker) (*Config, error) {
	c := &Config{StatPrefix: pb.GetStatPrefix(), MaxFrameBytes: kafka.DefaultMaxFrameBytes}
	c.Rewrite.Force = pb.GetForceResponseRewrite()
	c.Rewrite.MaxVersions = MaxVersions
	var errs []error
	if c.StatPrefix == "" {
		errs = append(errs, errors.New("stat_prefix: required"))
	}
	if spec := pb.GetIdBasedBrokerAddressRewriteSpec(); spec != nil {
		c.Rewrite.Brokers = map[int32]kafka.HostPort{}
		for i, r := range spec.GetRules() {
			path := fmt.Sprintf("id_based_broker_address_rewrite_spec.rules[%d]", i)
			if r.GetId() > math.MaxInt32 {
				errs = append(errs, fmt.Errorf("%s.id: %d is not a broker id", path, r.GetId()))
				continue
			}
			if r.GetHost() == "" {
				errs = append(errs, fmt.Errorf("%s.host: required", path))
			}
			if r.GetPort() == 0 || r.GetPort() > 65535 {
				errs = append(errs, fmt.Errorf("%s.port: %d is not a port", path, r.GetPort()))
			}
			id := int32(r.GetId())
			if _, dup := c.Rewrite.Brokers[id]; dup {
				errs = append(errs, fmt.Errorf("%s.id: broker %d has an earlier rule", path, id))
			}
			c.Rewrite.Brokers[id] = kafka.HostPort{Host: r.GetHost(), Port: int32(r.GetPort())}
		}
	}
	keys := func(field string, ks []uint32) map[int16]bool {
		if len(ks) == 0 {
			return nil
		}
		m := map[int16]bool{}
		for i, k := range ks {
			if k > math.MaxInt16 {
				errs = append(errs, fmt.Errorf("%s[%d]: %d is not an API key", field, i, k))
				continue
			}
			m[int16(k)] = true
		}
		return m
	}
	c.allowed = keys("api_keys_allowed", pb.GetApiKeysAllowed())
	c.denied = keys("api_keys_denied", pb.GetApiKeysDenied())
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// keyAllowed applies api_keys_allowed and api_keys_denied (Envoy: a key
// outside a non-empty allowed list, or in the denied list, closes the
// connection).
func (c *Config) keyAllowed(k int16) bool {
	if c.allowed != nil && !c.allowed[k] {
		return false
	}
	return !c.denied[k]
}

// policyValue is the JSON form of a TopicPolicy's value.
type policyValue struct {
	Rules []struct {
		Action     string   `json:"action"`
		Operations []string `json:"operations"`
		Topics     []string `json:"topics"`
		Principals []string `json:"principals"`
	} `json:"rules"`
	DefaultAction string `json:"default_action"`
	MaxFrameBytes *int64 `json:"max_frame_bytes"`
}

// ApplyPolicy parses a kafka_policy TypedStruct into c. Errors name fields
// below the TypedStruct.
func (c *Config) ApplyPolicy(ts *xdstypev3.TypedStruct) error {
	if ts.GetTypeUrl() != PolicyTypeURL {
		return fmt.Errorf("type_url: %q is not %q", ts.GetTypeUrl(), PolicyTypeURL)
	}
	raw, err := protojson.Marshal(ts.GetValue())
	if err != nil {
		return fmt.Errorf("value: %w", err)
	}
	var v policyValue
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if ts.GetValue() != nil {
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("value: %w", err)
		}
	}
	spec := kafka.PolicySpec{DefaultAction: v.DefaultAction}
	for _, r := range v.Rules {
		spec.Rules = append(spec.Rules, kafka.RuleSpec{Action: r.Action, Operations: r.Operations, Topics: r.Topics, Principals: r.Principals})
	}
	var errs []error
	p, err := kafka.NewPolicy(spec)
	if err != nil {
		errs = append(errs, prefix("value.", err))
	}
	if m := v.MaxFrameBytes; m != nil {
		if *m < 1024 || *m > math.MaxInt32 {
			errs = append(errs, fmt.Errorf("value.max_frame_bytes: %d is outside [1024, %d]", *m, math.MaxInt32))
		} else {
			c.MaxFrameBytes = int(*m)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	c.Policy = p
	return nil
}

// prefix puts p before each line of err.
func prefix(p string, err error) error {
	var errs []error
	for _, line := range bytes.Split([]byte(err.Error()), []byte("\n")) {
		errs = append(errs, errors.New(p+string(line)))
	}
	return errors.Join(errs...)
}

// New builds the Filter for c, counting into reg.
func New(c *Config, reg *metrics.Registry) *Filter {
	return &Filter{cfg: c, stats: reg.Kafka(c.StatPrefix)}
}
