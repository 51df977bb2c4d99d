package listener

import (
	"errors"
	"fmt"

	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	kafkav3 "github.com/envoyproxy/go-control-plane/contrib/envoy/extensions/filters/network/kafka_broker/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellis-mesh/trellis/internal/proxy/kafkabroker"
	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

// buildKafka handles a network filter that is kafka_broker, or the
// kafka_policy or kafka_trace (TypedStructs) that must follow one, adding
// it to *cfg.
// handled is false for any other filter. Errors name fields below the
// filter.
func buildKafka(tc *anypb.Any, cfg **kafkabroker.Config) (handled bool, err error) {
	if tc.MessageIs(&kafkav3.KafkaBroker{}) {
		if *cfg != nil {
			return true, errors.New("typed_config: a filter chain takes one kafka_broker filter")
		}
		pb := &kafkav3.KafkaBroker{}
		if err := tc.UnmarshalTo(pb); err != nil {
			return true, fmt.Errorf("typed_config: %w", err)
		}
		c, err := kafkabroker.ParseBroker(pb)
		if err != nil {
			return true, decode.PrefixErrors("typed_config", err)
		}
		*cfg = c
		return true, nil
	}
	ts := &xdstypev3.TypedStruct{}
	if !tc.MessageIs(ts) {
		return false, nil
	}
	if err := tc.UnmarshalTo(ts); err != nil {
		return false, nil
	}
	if ts.GetTypeUrl() == kafkabroker.TraceTypeURL {
		switch {
		case *cfg == nil:
			return true, errors.New("typed_config: kafka_trace must follow a kafka_broker filter in the chain")
		case (*cfg).HasTrace():
			return true, errors.New("typed_config: " + kafkabroker.ErrTraceRepeated.Error())
		}
		if err := (*cfg).ApplyTrace(ts); err != nil {
			return true, decode.PrefixErrors("typed_config", err)
		}
		return true, nil
	}
	if ts.GetTypeUrl() != kafkabroker.PolicyTypeURL {
		return false, nil
	}
	switch {
	case *cfg == nil:
		return true, errors.New("typed_config: kafka_policy must follow a kafka_broker filter in the chain")
	case (*cfg).Policy != nil:
		return true, errors.New("typed_config: a filter chain takes one kafka_policy filter")
	}
	if err := (*cfg).ApplyPolicy(ts); err != nil {
		return true, decode.PrefixErrors("typed_config", err)
	}
	return true, nil
}
