// Package cli wires Trellis' subcommands. Each command lives in its own file
// (or, for the proxy, its own package so the lean sidecar binary can link it
// alone) and is thin: options, validation, then a call into the packages that
// do the work.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/trellis-mesh/trellis/internal/cli/proxycmd"
)

// Main runs the trellis command line with args (without the program name)
// and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		var ec proxycmd.ExitCode
		if errors.As(err, &ec) {
			return int(ec)
		}
		fmt.Fprintln(stderr, "trellis:", err)
		return 1
	}
	return 0
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "trellis",
		Short: "Trellis: a light service mesh with Envoy-compatible configuration",
		Long: "Trellis is a service mesh in one binary: control plane, sidecar proxy,\n" +
			"gateway, messaging bridge and command line.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		newProxyCmd(),
		newControlCmd(),
		newApplyCmd(),
		newGetCmd(),
		newDescribeCmd(),
		newDeleteCmd(),
		newStatCmd(),
		newEdgesCmd(),
		newTapCmd(),
		newTokenCmd(),
		newCACmd(),
		newBootstrapCmd(),
		newEchoCmd(),
		newDemoCmd(),
		newCheckCmd(),
		newVersionCmd(),
	)
	return root
}
