package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/trellis-mesh/trellis/internal/control/client"
	"github.com/trellis-mesh/trellis/internal/control/telemetry"
)

type statOptions struct {
	clientOptions
	mesh   string
	from   string
	window time.Duration
	output string
}

// statKinds maps what a user may type to the kind the API takes.
var statKinds = map[string]string{
	"service": "service", "services": "service", "svc": "service",
	"route": "route", "routes": "route",
	"dataplane": "dataplane", "dataplanes": "dataplane", "dp": "dataplane",
}

func newStatCmd() *cobra.Command {
	o := &statOptions{}
	cmd := &cobra.Command{
		Use:   "stat [service|route|dataplane] [NAME]",
		Short: "Show golden metrics: success rate, request rate, latency, connections",
		Long: "Show the golden metrics the control plane keeps from the proxies' pushes:\n" +
			"success rate, requests per second, latency percentiles, open TCP connections\n" +
			"and bytes per second, over a rolling window. Services are measured by their\n" +
			"own proxies (server side); with --from, by the calling service's proxies.\n" +
			"Routes are measured by the callers. NAME is namespace/name or a name in any\n" +
			"namespace; without it every service (route, dataplane) is listed.",
		Example: "  trellis stat\n  trellis stat service api --window 5m\n" +
			"  trellis stat service --from web\n  trellis stat route reviews-canary -o json",
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(o.output, "table", "json"); err != nil {
				return err
			}
			q := client.StatsQuery{Kind: "service", Mesh: o.mesh, From: o.from, Window: o.window}
			if len(args) > 0 {
				k, ok := statKinds[strings.ToLower(args[0])]
				if !ok {
					return fmt.Errorf("%q: want service, route or dataplane", args[0])
				}
				q.Kind = k
			}
			if len(args) == 2 {
				q.Name = args[1]
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			res, err := c.Stats(cmd.Context(), q)
			if err != nil {
				return err
			}
			if o.output == "json" {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			if len(res.Rows) == 0 {
				_, err := fmt.Fprintf(cmd.ErrOrStderr(), "no %s found\n", q.Kind)
				return err
			}
			return renderStats(cmd.OutOrStdout(), res)
		},
	}
	o.flags(cmd)
	cmd.Flags().StringVar(&o.from, "from", "", "report what this calling service saw (namespace/name or name)")
	return cmd
}

func (o *statOptions) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.mesh, "mesh", "", "only this mesh (default: every mesh)")
	cmd.Flags().DurationVar(&o.window, "window", time.Minute, "how far back to look (multiples of the control plane's 10s resolution, at most its retention)")
	cmd.Flags().StringVarP(&o.output, "output", "o", "table", "table or json")
	o.bind(cmd.Flags())
}

func newEdgesCmd() *cobra.Command {
	o := &statOptions{}
	cmd := &cobra.Command{
		Use:   "edges",
		Short: "Show which services talk to which, and whether over mutual TLS",
		Long: "List the pairs of services that exchanged traffic in the window, as the\n" +
			"callers' proxies saw it, with their golden metrics and whether the edge is\n" +
			"mutually authenticated (unknown until the callers' proxies report it).",
		Example: "  trellis edges\n  trellis edges --window 5m -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(o.output, "table", "json"); err != nil {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			res, err := c.Edges(cmd.Context(), o.mesh, o.window)
			if err != nil {
				return err
			}
			if o.output == "json" {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			if len(res.Edges) == 0 {
				_, err := fmt.Fprintf(cmd.ErrOrStderr(), "no traffic in the last %s\n", res.Window)
				return err
			}
			return renderEdges(cmd.OutOrStdout(), res)
		},
	}
	o.flags(cmd)
	return cmd
}

// renderStats writes a stat answer as a table. A MESH column appears
// when the rows span several meshes, a FROM column for client-side rows.
func renderStats(w io.Writer, res telemetry.Result) error {
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

// renderEdges writes an edges answer as a table.
func renderEdges(w io.Writer, res telemetry.EdgeResult) error {
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
	return []string{success, strconv.FormatFloat(s.RPS, 'f', 1, 64), ms(s.P50), ms(s.P95), ms(s.P99),
		strconv.FormatInt(s.TCPConnections, 10), bytesPerSecond(s.BytesSent), bytesPerSecond(s.BytesReceived)}
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
	for _, u := range []string{"B", "KiB", "MiB"} {
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
