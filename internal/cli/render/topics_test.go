package render_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/trellis-mesh/trellis/internal/cli/render"
	"github.com/trellis-mesh/trellis/internal/control/telemetry"
)

func lag(v int64) *int64 { return &v }

var topicRows = []telemetry.TopicRow{
	{Kind: "topic", Mesh: "default", Broker: "default/events:4222", Topic: "orders.created", Via: "nats",
		Counts: telemetry.TopicCounts{Produced: 600, Denied: 3}, PerSecond: telemetry.TopicRates{Produced: 10, Denied: 0.05}},
	{Kind: "topic", Mesh: "default", Broker: "default/kafka:9092", Topic: "", Via: "kafka",
		Counts: telemetry.TopicCounts{Denied: 12}, PerSecond: telemetry.TopicRates{Denied: 0.2}},
	{Kind: "topic", Mesh: "default", Broker: "kafka", Topic: "orders", Via: "bridge",
		Counts:    telemetry.TopicCounts{Published: 1200, Delivered: 1150, Retried: 60, DeadLettered: 6},
		PerSecond: telemetry.TopicRates{Published: 20, Delivered: 19.1666, Retried: 1, DeadLettered: 0.1}, Lag: lag(42)},
}

func TestTopicsTable(t *testing.T) {
	for _, tc := range []struct {
		name string
		res  telemetry.TopicResult
	}{
		{"stat-topics", telemetry.TopicResult{Window: "1m0s", Rows: topicRows}},
		{"stat-topics-meshes", telemetry.TopicResult{Window: "1m0s", Rows: []telemetry.TopicRow{
			topicRows[2], {Kind: "topic", Mesh: "other", Broker: "nats", Topic: "audit", Via: "bridge", Lag: lag(0)},
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := render.Topics(&b, tc.res); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, b.String())
		})
	}
}

// TestTopicsJSON pins the JSON shape `trellis stat topic -o json` prints
// (the API's answer, indented).
func TestTopicsJSON(t *testing.T) {
	data, err := json.MarshalIndent(telemetry.TopicResult{Window: "1m0s", Rows: topicRows[1:]}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "stat-topics-json", string(data)+"\n")
}
