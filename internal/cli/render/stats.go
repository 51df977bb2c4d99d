package render

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/trellis-mesh/trellis/internal/control/telemetry"
)

// Stats writes a stat answer as a table. A MESH column appears
// when the rows span several meshes, a FROM column for client-side rows.
func Stats(w io.Writer, res telemetry.Result) error {
	meshes, from := map[string]bool{}, false
	for _, r := range res.Rows {
		meshes[r.Mesh] = true
		from = from || r.From != ""
	}
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	var head []string
	if len(meshes) > 1 {
		head = append(head, "MESH")
	}
	head = append(head, "NAMESPACE", "NAME")
	if from {
		head = append(head, "FROM")
	}
	fmt.Fprintln(tw, strings.Join(append(head, statHeader...), "\t"))
	for _, r := range res.Rows {
		var row []string
		if len(meshes) > 1 {
			row = append(row, r.Mesh)
		}
		ns, name := splitName(r.Name)
		row = append(row, ns, name)
		if from {
			row = append(row, r.From)
		}
		fmt.Fprintln(tw, strings.Join(append(row, statCells(&r.Stats)...), "\t"))
	}
	return tw.Flush()
}

// Edges writes an edges answer as a table.
func Edges(w io.Writer, res telemetry.EdgeResult) error {
	meshes := map[string]bool{}
	for _, e := range res.Edges {
		meshes[e.Mesh] = true
	}
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	var head []string
	if len(meshes) > 1 {
		head = append(head, "MESH")
	}
	fmt.Fprintln(tw, strings.Join(append(append(head, "FROM", "TO", "MTLS"), statHeader...), "\t"))
	for _, e := range res.Edges {
		var row []string
		if len(meshes) > 1 {
			row = append(row, e.Mesh)
		}
		row = append(row, e.From, e.To, e.MTLS)
		fmt.Fprintln(tw, strings.Join(append(row, statCells(&e.Stats)...), "\t"))
	}
	return tw.Flush()
}

var statHeader = []string{"SUCCESS", "RPS", "LATENCY_P50", "LATENCY_P95", "LATENCY_P99", "TCP_CONN", "BYTES_OUT/S", "BYTES_IN/S"}

func statCells(s *telemetry.Stats) []string {
	success := "-"
	if s.Success != nil {
		success = strconv.FormatFloat(*s.Success*100, 'f', 2, 64) + "%"
	}
	return []string{success, rate(s.RPS), ms(s.P50), ms(s.P95), ms(s.P99),
		strconv.FormatInt(s.TCPConnections, 10), bytesPerSecond(s.BytesSent), bytesPerSecond(s.BytesReceived)}
}

// rate shows small rates with two decimals, so a trickle is not 0.0.
func rate(v float64) string {
	if v > 0 && v < 10 {
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func ms(v *float64) string {
	switch {
	case v == nil:
		return "-"
	case *v < 10:
		return strconv.FormatFloat(*v, 'f', 1, 64) + "ms"
	}
	return strconv.FormatFloat(*v, 'f', 0, 64) + "ms"
}

func bytesPerSecond(v float64) string {
	if v < 1024 {
		return strconv.FormatFloat(v, 'f', 0, 64) + "B"
	}
	v /= 1024
	for _, u := range []string{"KiB", "MiB"} {
		if v < 1024 {
			return strconv.FormatFloat(v, 'f', 1, 64) + u
		}
		v /= 1024
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + "GiB"
}

func splitName(n string) (ns, name string) {
	if i := strings.IndexByte(n, '/'); i >= 0 {
		return n[:i], n[i+1:]
	}
	return "", n
}
