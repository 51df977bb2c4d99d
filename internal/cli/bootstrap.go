package cli

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/trellis-mesh/trellis/internal/control"
	"github.com/trellis-mesh/trellis/internal/control/grpcbootstrap"
)

func newBootstrapCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bootstrap",
		Short: "Print bootstrap files for xDS clients",
	}
	cmd.AddCommand(newBootstrapGRPCCmd())
	return cmd
}

func newBootstrapGRPCCmd() *cobra.Command {
	var o grpcbootstrap.Options
	cmd := &cobra.Command{
		Use:   "grpc --service NAME",
		Short: "Print a gRPC xDS bootstrap for a proxyless grpc-go client",
		Long: "Print the JSON bootstrap a grpc-go application reads from GRPC_XDS_BOOTSTRAP\n" +
			"(or GRPC_XDS_BOOTSTRAP_CONFIG) so that dialing xds:///SERVICE gets endpoints,\n" +
			"routes and load balancing from trellis control. See docs/proxyless-grpc.md.",
		Example: "  trellis bootstrap grpc --service reviews > bootstrap.json\n" +
			"  GRPC_XDS_BOOTSTRAP=bootstrap.json ./my-grpc-client   # dials xds:///reviews",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Service == "" {
				return errors.New("--service is required")
			}
			data, err := grpcbootstrap.Generate(o)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(append(data, '\n'))
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Service, "service", "", "the service this client is (its node id defaults to proxyless/SERVICE)")
	f.StringVar(&o.Mesh, "mesh", "default", "the mesh the client belongs to")
	f.StringVar(&o.ServerURI, "control-plane", control.DefaultXDSAddr, "xDS address of trellis control")
	f.StringVar(&o.NodeID, "node-id", "", "xDS node id (default: proxyless/SERVICE)")
	f.StringVar(&o.Region, "region", "", "locality region of the client")
	f.StringVar(&o.Zone, "zone", "", "locality zone of the client")
	f.StringVar(&o.SubZone, "sub-zone", "", "locality sub-zone of the client")
	return cmd
}
