package render

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/trellis-mesh/trellis/internal/control/telemetry"
)

// Topics writes a topic stat answer as a table. PUBLISHED/s counts the
// bridge's acknowledged publishes plus the records and messages produced
// through the protocol filters, DELIVERED/s the bridge's accepted
// deliveries plus those fetched or delivered through the filters (a row
// has one or the other: its broker is a Broker, or a Service port). A
// MESH column appears when the rows span several meshes.
func Topics(w io.Writer, res telemetry.TopicResult) error {
	meshes := map[string]bool{}
	for _, r := range res.Rows {
		meshes[r.Mesh] = true
	}
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	var head []string
	if len(meshes) > 1 {
		head = append(head, "MESH")
	}
	head = append(head, "BROKER", "TOPIC", "PUBLISHED/s", "DELIVERED/s", "RETRIED/s", "DEAD-LETTERED/s", "DENIED/s", "LAG")
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, r := range res.Rows {
		var row []string
		if len(meshes) > 1 {
			row = append(row, r.Mesh)
		}
		topic, lag := r.Topic, "-"
		if topic == "" {
			topic = "-" // Kafka denials name no topic
		}
		if r.Lag != nil {
			lag = strconv.FormatInt(*r.Lag, 10)
		}
		p := &r.PerSecond
		row = append(row, r.Broker, topic, rate(p.Published+p.Produced), rate(p.Delivered+p.Consumed),
			rate(p.Retried), rate(p.DeadLettered), rate(p.Denied), lag)
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}
