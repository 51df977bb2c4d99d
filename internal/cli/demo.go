package cli

import (
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/trellis-mesh/trellis/internal/demo"
)

// demoOptions are the flags of `trellis demo`.
type demoOptions struct {
	mesh      demo.Options
	proxyOnly bool
	proxy     demo.ProxyOnlyOptions
}

func newDemoCmd() *cobra.Command {
	o := &demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the demo mesh: a control plane, a small application with a sidecar per instance, and load",
		Long: "Run a whole mesh on this machine, in a temporary data directory: a control plane,\n" +
			"the resources of examples/demo applied through its API (a Mesh, Services, a 90/10\n" +
			"HTTPRoute canary for reviews, a TrafficPolicy), an application (frontend calling\n" +
			"catalog and reviews v1/v2) with a `trellis proxy` sidecar per instance registered\n" +
			"over xDS, and a steady load on the frontend. It prints what runs where and commands\n" +
			"to try; `trellis get` and the other commands in another terminal reach the demo's\n" +
			"control plane with no flags. Ctrl-C stops everything. See docs/demo.md.\n\n" +
			"--proxy-only runs the data plane's demo instead: one proxy configured by\n" +
			"examples/proxy/bootstrap.yaml in front of three built-in services.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(cmd); err != nil {
				return err
			}
			if o.proxyOnly {
				o.proxy.Out = cmd.OutOrStdout()
				o.proxy.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
				return demo.RunProxyOnly(cmd.Context(), o.proxy)
			}
			o.mesh.Out, o.mesh.Log = cmd.OutOrStdout(), cmd.ErrOrStderr()
			return demo.Run(cmd.Context(), o.mesh)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.mesh.RandomPorts, "random-ports", false, "use ports the system picks instead of the defaults (API 7070, xDS 7071, sidecars 9901-9905, 10001-10004, 15001, 15002, 15080)")
	f.Float64Var(&o.mesh.Rate, "rate", 10, "load on the frontend, requests per second (0: none, at most 200)")
	f.DurationVar(&o.mesh.ReportEvery, "report-every", demo.DefaultReportEvery, "how often to print a summary of the load (negative: never)")
	f.BoolVar(&o.proxyOnly, "proxy-only", false, "run the data plane's demo: one proxy from an Envoy bootstrap, no control plane")
	f.StringVar(&o.proxy.Listen, "listen", "127.0.0.1:10000", "with --proxy-only: address of the proxy's listener")
	f.StringVar(&o.proxy.Admin, "admin", "127.0.0.1:9901", "with --proxy-only: address of the proxy's admin interface")
	return cmd
}

func (o *demoOptions) validate(cmd *cobra.Command) error {
	if o.mesh.Rate < 0 || o.mesh.Rate > 200 {
		return fmt.Errorf("--rate %g: want 0 to 200 requests per second", o.mesh.Rate)
	}
	if o.mesh.ReportEvery == 0 {
		return fmt.Errorf("--report-every 0s: want a positive duration, or a negative one for no summary")
	}
	f := cmd.Flags()
	if o.proxyOnly {
		for _, name := range []string{"random-ports", "rate", "report-every"} {
			if f.Changed(name) {
				return fmt.Errorf("--%s goes with the mesh demo, not --proxy-only", name)
			}
		}
		return nil
	}
	for _, name := range []string{"listen", "admin"} {
		if f.Changed(name) {
			return fmt.Errorf("--%s goes with --proxy-only", name)
		}
	}
	return nil
}
