package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/trellis-mesh/trellis/internal/cli/render"
	"github.com/trellis-mesh/trellis/internal/control/client"
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
	"topic": "topic", "topics": "topic",
}

func newStatCmd() *cobra.Command {
	o := &statOptions{}
	cmd := &cobra.Command{
		Use:   "stat [service|route|dataplane|topic] [NAME]",
		Short: "Show golden metrics: success rate, request rate, latency, connections; messaging per topic",
		Long: "Show the golden metrics the control plane keeps from the proxies' pushes:\n" +
			"success rate, requests per second, latency percentiles, open TCP connections\n" +
			"and bytes per second, over a rolling window. Services are measured by their\n" +
			"own proxies (server side); with --from, by the calling service's proxies.\n" +
			"Routes are measured by the callers. NAME is namespace/name or a name in any\n" +
			"namespace; without it every service (route, dataplane) is listed.\n\n" +
			"`stat topic` shows messaging per broker and topic (docs/metrics.md): messages\n" +
			"published, delivered, retried, dead-lettered and denied per second, and the\n" +
			"lag the broker reports. NAME is a topic or NATS subject; --from selects a\n" +
			"broker (a Broker's name, or a Service port such as events:4222).",
		Example: "  trellis stat\n  trellis stat service api --window 5m\n" +
			"  trellis stat service --from web\n  trellis stat route reviews-canary -o json\n" +
			"  trellis stat topic orders --window 5m\n  trellis stat topic --from events:4222 -o json",
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(o.output, "table", "json"); err != nil {
				return err
			}
			q := client.StatsQuery{Kind: "service", Mesh: o.mesh, From: o.from, Window: o.window}
			if len(args) > 0 {
				k, ok := statKinds[strings.ToLower(args[0])]
				if !ok {
					return fmt.Errorf("%q: want service, route, dataplane or topic", args[0])
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
			if q.Kind == "topic" {
				return o.topics(cmd, c, q)
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
			return render.Stats(cmd.OutOrStdout(), res)
		},
	}
	o.flags(cmd)
	cmd.Flags().StringVar(&o.from, "from", "", "report what this calling service saw (namespace/name or name); for topics, the broker")
	return cmd
}

// topics runs `trellis stat topic`.
func (o *statOptions) topics(cmd *cobra.Command, c *client.Client, q client.StatsQuery) error {
	res, err := c.Topics(cmd.Context(), q)
	if err != nil {
		return err
	}
	if o.output == "json" {
		return writeJSON(cmd.OutOrStdout(), res)
	}
	if len(res.Rows) == 0 {
		_, err := fmt.Fprintln(cmd.ErrOrStderr(), "no topic found")
		return err
	}
	return render.Topics(cmd.OutOrStdout(), res)
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
			return render.Edges(cmd.OutOrStdout(), res)
		},
	}
	o.flags(cmd)
	return cmd
}
