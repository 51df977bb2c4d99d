package kafkabroker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/trellis-mesh/trellis/internal/messaging/kafka"
)

// TraceTypeURL is the type_url, inside an xds.type.v3.TypedStruct, of
// Trellis' Kafka trace context filter (trellis.filters.network.kafka_trace).
// Like kafka_policy it must follow a kafka_broker in the same chain.
const TraceTypeURL = "type.googleapis.com/trellis.filters.network.kafka.v1.Trace"

// traceValue is the JSON form of a Trace's value.
type traceValue struct {
	// InjectTraceparent turns injection on; false (the default) leaves
	// records as they are.
	InjectTraceparent bool `json:"inject_traceparent"`
	// Sampling is the percentage of injected traceparents flagged
	// sampled; absent means 100.
	Sampling *float64 `json:"sampling"`
}

// ApplyTrace parses a kafka_trace TypedStruct into c: with
// inject_traceparent, every record of a Produce request the client sends
// that has no traceparent header gets a new one (internal/messaging/kafka,
// Tracer). Errors name fields below the TypedStruct; unknown fields are
// refused.
func (c *Config) ApplyTrace(ts *xdstypev3.TypedStruct) error {
	if ts.GetTypeUrl() != TraceTypeURL {
		return fmt.Errorf("type_url: %q is not %q", ts.GetTypeUrl(), TraceTypeURL)
	}
	var v traceValue
	if ts.GetValue() != nil {
		raw, err := protojson.Marshal(ts.GetValue())
		if err != nil {
			return fmt.Errorf("value: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("value: %w (known fields: inject_traceparent, sampling)", err)
		}
	}
	sampling := 100.0
	if s := v.Sampling; s != nil {
		if !(*s >= 0 && *s <= 100) {
			return fmt.Errorf("value.sampling: %v is not a percentage between 0 and 100", *s)
		}
		sampling = *s
	}
	c.Trace = nil
	if v.InjectTraceparent {
		c.Trace = &kafka.Tracer{Sampling: sampling}
	}
	c.traceSet = true
	return nil
}

// ErrTraceRepeated is a second kafka_trace filter in one chain.
var ErrTraceRepeated = errors.New("a filter chain takes one kafka_trace filter")

// HasTrace reports whether a kafka_trace filter was applied to c.
func (c *Config) HasTrace() bool { return c.traceSet }

// inject adds traceparent headers to the records of Produce request m and
// counts what it did; it reports whether m changed.
func (c *conn) inject(m *kmsg.ProduceRequest, version int16) bool {
	var st kafka.TraceStats
	changed := c.f.cfg.Trace.InjectProduce(m, version, &st)
	if st.Injected > 0 {
		c.f.stats.TraceInjected(st.Injected)
	}
	for r, n := range st.Skipped {
		if n > 0 {
			c.f.stats.TraceSkipped(kafka.SkipReason(r).String(), n)
		}
	}
	return changed
}
