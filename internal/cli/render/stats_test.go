package render_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/trellis-mesh/trellis/internal/cli/render"
	"github.com/trellis-mesh/trellis/internal/control/telemetry"
)

func ptr(v float64) *float64 { return &v }

var full = telemetry.Stats{
	Requests: 600, RPS: 10, Success: ptr(0.95), P50: ptr(17.5), P95: ptr(24.25), P99: ptr(812),
	TCPConnections: 3, TCPConnectionRate: 0.1, BytesSent: 100, BytesReceived: 5.5 * 1024 * 1024,
}

func TestStatsTable(t *testing.T) {
	for _, tc := range []struct {
		name string
		res  telemetry.Result
	}{
		{"stat-services", telemetry.Result{Window: "1m0s", Rows: []telemetry.Row{
			{Kind: "service", Mesh: "default", Name: "default/api", Stats: full},
			{Kind: "service", Mesh: "default", Name: "shop/idle"},
		}}},
		{"stat-from", telemetry.Result{Window: "1m0s", Rows: []telemetry.Row{
			{Kind: "service", Mesh: "default", Name: "default/api-v1", From: "default/web", Stats: full},
			{Kind: "service", Mesh: "default", Name: "default/api-v2", From: "default/web", Stats: telemetry.Stats{Requests: 1, RPS: 0.016, Success: ptr(0), P50: ptr(0.75), P95: ptr(0.75), P99: ptr(0.75)}},
		}}},
		{"stat-meshes", telemetry.Result{Window: "1m0s", Rows: []telemetry.Row{
			{Kind: "dataplane", Mesh: "default", Name: "default/api-1", Stats: full},
			{Kind: "dataplane", Mesh: "other", Name: "default/api-1"},
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := render.Stats(&b, tc.res); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, b.String())
		})
	}
}

func TestEdgesTable(t *testing.T) {
	var b bytes.Buffer
	err := render.Edges(&b, telemetry.EdgeResult{Window: "1m0s", Edges: []telemetry.Edge{
		{Mesh: "default", From: "default/web", To: "default/api-v1", MTLS: "yes", Stats: full},
		{Mesh: "default", From: "default/web", To: "default/db", MTLS: "unknown", Stats: telemetry.Stats{TCPConnections: 2, BytesSent: 2048}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "edges", b.String())
}

// TestStatsJSON pins the JSON shape `trellis stat -o json` prints (the
// API's answer, indented).
func TestStatsJSON(t *testing.T) {
	res := telemetry.Result{Window: "1m0s", Rows: []telemetry.Row{
		{Kind: "service", Mesh: "default", Name: "default/api-v1", From: "default/web", Stats: full},
		{Kind: "service", Mesh: "default", Name: "shop/idle"},
	}}
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "stat-json", string(data)+"\n")
}
