package cli

import (
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/trellis-mesh/trellis/internal/cli/proxycmd"
)

func newProxyCmd() *cobra.Command {
	o := &proxycmd.Options{}
	cmd := &cobra.Command{
		Use:   "proxy (-c BOOTSTRAP | --control-plane HOST:PORT --dataplane FILE)",
		Short: "Run the data-plane proxy from an Envoy v3 bootstrap file or a control plane",
		Long:  proxycmd.Long,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Check(); err != nil {
				return err
			}
			return proxycmd.Run(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	o.Bind(pflags{cmd.Flags()})
	return cmd
}

// pflags adapts cobra's flag set to proxycmd.FlagSet; Go's flag package has
// no shorthands, so proxycmd binds "c" as a flag of its own, which here
// becomes the shorthand of --config-path.
type pflags struct{ fs *pflag.FlagSet }

func (p pflags) StringVar(v *string, name, value, usage string) {
	switch name {
	case "c":
	case "config-path":
		p.fs.StringVarP(v, name, "c", value, "Envoy v3 bootstrap file (YAML or JSON)")
	default:
		p.fs.StringVar(v, name, value, usage)
	}
}

func (p pflags) BoolVar(v *bool, name string, value bool, usage string) {
	p.fs.BoolVar(v, name, value, usage)
}

func (p pflags) DurationVar(v *time.Duration, name string, value time.Duration, usage string) {
	p.fs.DurationVar(v, name, value, usage)
}
