package cli

import (
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/trellis-mesh/trellis/internal/demo"
)

func newDemoCmd() *cobra.Command {
	var o demo.Options
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the demo: a Trellis proxy in front of three built-in services",
		Long: "Run the demo on loopback: three built-in echo services (web v1, web v2, api)\n" +
			"behind a Trellis proxy configured by examples/proxy/bootstrap.yaml, with a\n" +
			"90/10 canary split. Ctrl-C stops everything.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Out = cmd.OutOrStdout()
			o.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			return demo.Run(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.Listen, "listen", "127.0.0.1:10000", "address of the demo proxy's listener")
	cmd.Flags().StringVar(&o.Admin, "admin", "127.0.0.1:9901", "address of the demo proxy's admin interface")
	return cmd
}
