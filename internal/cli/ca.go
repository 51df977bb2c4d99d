package cli

import (
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/trellis-mesh/trellis/internal/control/meshca"
)

func newCACmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Show and rotate a mesh's certificate authority",
	}
	cmd.AddCommand(newCAStatusCmd(), newCARotateCmd())
	return cmd
}

type caStatusOptions struct {
	clientOptions
	mesh, output string
}

func newCAStatusCmd() *cobra.Command {
	o := &caStatusOptions{}
	cmd := &cobra.Command{
		Use:     "status [--mesh M]",
		Short:   "Show a mesh's CA: rotation phase, CAs, trust bundle and what a rotation waits for",
		Example: "  trellis ca status\n  trellis ca status --mesh payments -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(o.output, "text", "json"); err != nil {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			st, err := c.CAStatus(cmd.Context(), o.mesh)
			if err != nil {
				return err
			}
			if o.output == "json" {
				return writeJSON(cmd.OutOrStdout(), st)
			}
			return caText(cmd.OutOrStdout(), st)
		},
	}
	cmd.Flags().StringVar(&o.mesh, "mesh", "default", "mesh")
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "text or json")
	o.bind(cmd.Flags())
	return cmd
}

type caRotateOptions struct {
	clientOptions
	mesh, cert, key, output string
	force, abort            bool
}

func (o *caRotateOptions) validate() error {
	if (o.cert == "") != (o.key == "") {
		return fmt.Errorf("--cert and --key go together")
	}
	if o.force && o.abort {
		return fmt.Errorf("--force and --abort: choose one")
	}
	return checkOutput(o.output, "text", "json")
}

func newCARotateCmd() *cobra.Command {
	o := &caRotateOptions{}
	cmd := &cobra.Command{
		Use:   "rotate [--mesh M] [--cert FILE --key FILE] [--force] [--abort]",
		Short: "Take one step of a staged CA rotation",
		Long: "Take one step of a staged CA rotation and show where it stands. A rotation walks\n" +
			"  Stable → AddNew (both roots trusted, old CA signs)\n" +
			"         → SignWithNew (new CA signs; proxies renew onto it)\n" +
			"         → RemoveOld (only the new root trusted) → Stable\n" +
			"one step per call: run trellis ca rotate again until the phase is Stable. A step\n" +
			"that must wait (proxies still to acknowledge a bundle, leaves of the old CA still\n" +
			"held) is refused with what it waits for; nothing changes.\n\n" +
			"--cert and --key give the new CA (PEM chain, signing certificate first, and its\n" +
			"key): a root or an intermediate of your PKI; without them a root is generated.\n" +
			"On a mesh without a CA they install it as the mesh's first CA.\n" +
			"--force goes straight to SignWithNew (expired or compromised root).\n" +
			"--abort cancels a rotation still in AddNew.",
		Example: "  trellis ca rotate                      # begin, then repeat until Stable\n" +
			"  trellis ca rotate --cert inter.pem --key inter.key\n" +
			"  trellis ca rotate --abort",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			req := meshca.RotateRequest{Mesh: o.mesh, Force: o.force, Abort: o.abort}
			if o.cert != "" {
				cert, err := os.ReadFile(o.cert)
				if err != nil {
					return fmt.Errorf("--cert: %w", err)
				}
				key, err := os.ReadFile(o.key)
				if err != nil {
					return fmt.Errorf("--key: %w", err)
				}
				req.Cert, req.Key = string(cert), string(key)
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			st, err := c.RotateCA(cmd.Context(), req)
			if err != nil {
				return err
			}
			if o.output == "json" {
				return writeJSON(cmd.OutOrStdout(), st)
			}
			return caText(cmd.OutOrStdout(), st)
		},
	}
	cmd.Flags().StringVar(&o.mesh, "mesh", "default", "mesh")
	cmd.Flags().StringVar(&o.cert, "cert", "", "PEM certificate chain of the new CA, signing certificate first")
	cmd.Flags().StringVar(&o.key, "key", "", "PEM private key of the new CA")
	cmd.Flags().BoolVar(&o.force, "force", false, "sign with the new CA at once, without waiting for proxies to trust it")
	cmd.Flags().BoolVar(&o.abort, "abort", false, "cancel a rotation in AddNew")
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "text or json")
	o.bind(cmd.Flags())
	return cmd
}

// caText writes a CA status for a person.
func caText(w io.Writer, st meshca.CAStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if st.Step != "" {
		fmt.Fprintf(tw, "Step:\t%s\n", st.Step)
	}
	fmt.Fprintf(tw, "Mesh:\t%s\n", st.Mesh)
	fmt.Fprintf(tw, "Trust domain:\t%s\n", st.TrustDomain)
	fmt.Fprintf(tw, "Phase:\t%s\n", st.Phase)
	fmt.Fprintf(tw, "Current CA:\t%s\n", caLine(st.Current))
	if st.Next != nil {
		fmt.Fprintf(tw, "Next CA:\t%s\n", caLine(st.Next))
	}
	fmt.Fprintf(tw, "Signing:\t%s\n", st.Signer)
	roots := "1 root"
	if st.BundleRoots != 1 {
		roots = fmt.Sprintf("%d roots", st.BundleRoots)
	}
	fmt.Fprintf(tw, "Trust bundle:\t%s (%s)\n", st.BundleVersion, roots)
	waiting := "nothing (no rotation in progress)"
	if st.Waiting != "" {
		waiting = st.Waiting
	}
	fmt.Fprintf(tw, "Waiting for:\t%s\n", waiting)
	fmt.Fprintf(tw, "Progress:\t%d proxies behind, %d leaves from the old CA (as this replica sees them)\n",
		st.Progress.ProxiesBehind, st.Progress.LeavesFromOld)
	return tw.Flush()
}

func caLine(c *meshca.CAInfo) string {
	if c == nil {
		return "-"
	}
	kind := "root"
	if c.Intermediate {
		kind = "intermediate under " + c.Root
	}
	return fmt.Sprintf("%s (%s), expires %s", c.Subject, kind, c.NotAfter.UTC().Format(time.RFC3339))
}
