package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/trellis-mesh/trellis/internal/control/meshca"
)

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke dataplane tokens",
		Long: "A dataplane token lets a proxy obtain certificates for one mesh Service's\n" +
			"identity (spiffe://<trust-domain>/<mesh>/<service>). Give it to the proxy with\n" +
			"trellis proxy --token-file FILE. The token is shown once, when it is created.",
	}
	cmd.AddCommand(newTokenCreateCmd(), newTokenListCmd(), newTokenRevokeCmd())
	return cmd
}

type tokenCreateOptions struct {
	clientOptions
	mesh, service, ttl, output string
}

func (o *tokenCreateOptions) validate() error {
	if o.service == "" {
		return fmt.Errorf("--service is required")
	}
	if o.ttl != "" {
		if _, err := time.ParseDuration(o.ttl); err != nil {
			return fmt.Errorf("--ttl %q: %w", o.ttl, err)
		}
	}
	return checkOutput(o.output, "text", "json")
}

func newTokenCreateCmd() *cobra.Command {
	o := &tokenCreateOptions{}
	cmd := &cobra.Command{
		Use:   "create --service S [--mesh M] [--ttl D]",
		Short: "Issue a dataplane token for a mesh Service",
		Long: "Issue a dataplane token for a mesh Service. With -o text (the default) the token\n" +
			"alone goes to stdout and a description to stderr, so\n" +
			"  trellis token create --service web > web.token\n" +
			"writes a file for trellis proxy --token-file. The mesh's CA is created on first use.",
		Example: "  trellis token create --mesh default --service web --ttl 720h > web.token\n" +
			"  trellis token create --service web -o json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			tok, err := c.CreateToken(cmd.Context(), o.mesh, o.service, o.ttl)
			if err != nil {
				return err
			}
			if o.output == "json" {
				return writeJSON(cmd.OutOrStdout(), tok)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "token %s for service %q of mesh %q, expires %s\n",
				tok.ID, tok.Service, tok.Mesh, tok.Expiry.UTC().Format(time.RFC3339))
			_, err = fmt.Fprintln(cmd.OutOrStdout(), tok.Token)
			return err
		},
	}
	cmd.Flags().StringVar(&o.mesh, "mesh", "default", "mesh of the Service")
	cmd.Flags().StringVar(&o.service, "service", "", "Service whose identity the token grants (required)")
	cmd.Flags().StringVar(&o.ttl, "ttl", "", "lifetime, a Go duration such as 720h (default one year)")
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "text or json")
	o.bind(cmd.Flags())
	return cmd
}

type tokenListOptions struct {
	clientOptions
	mesh, output string
}

func newTokenListCmd() *cobra.Command {
	o := &tokenListOptions{}
	cmd := &cobra.Command{
		Use:     "list [--mesh M]",
		Short:   "List dataplane tokens (never the tokens themselves)",
		Example: "  trellis token list\n  trellis token list --mesh default -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(o.output, "table", "json"); err != nil {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			list, err := c.ListTokens(cmd.Context(), o.mesh)
			if err != nil {
				return err
			}
			if o.output == "json" {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"items": list})
			}
			if len(list) == 0 {
				_, err := fmt.Fprintln(cmd.ErrOrStderr(), "no tokens found")
				return err
			}
			return tokenTable(cmd.OutOrStdout(), list)
		},
	}
	cmd.Flags().StringVar(&o.mesh, "mesh", "", "only this mesh's tokens (default: every mesh)")
	cmd.Flags().StringVarP(&o.output, "output", "o", "table", "table or json")
	o.bind(cmd.Flags())
	return cmd
}

func tokenTable(w io.Writer, list []meshca.TokenRecord) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "ID\tMESH\tSERVICE\tISSUED\tEXPIRES\tREVOKED")
	for _, t := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\n", t.ID, t.Mesh, t.Service,
			t.IssuedAt.UTC().Format(time.RFC3339), t.Expiry.UTC().Format(time.RFC3339), t.Revoked)
	}
	return tw.Flush()
}

type tokenRevokeOptions struct {
	clientOptions
	mesh string
}

func newTokenRevokeCmd() *cobra.Command {
	o := &tokenRevokeOptions{}
	cmd := &cobra.Command{
		Use:   "revoke ID [--mesh M]",
		Short: "Revoke a dataplane token",
		Long: "Revoke a dataplane token: every control-plane replica refuses it from its next\n" +
			"certificate request on. Certificates already issued with it stay valid until\n" +
			"they expire (at most one certificate lifetime, 24h by default).",
		Example: "  trellis token revoke 2327bc20b80abfb3f24ab5662d727f5a",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			rec, err := c.RevokeToken(cmd.Context(), o.mesh, args[0])
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "token %s (service %q of mesh %q) revoked\n", rec.ID, rec.Service, rec.Mesh)
			return err
		},
	}
	cmd.Flags().StringVar(&o.mesh, "mesh", "", "mesh of the token (needed only if the id exists in several)")
	o.bind(cmd.Flags())
	return cmd
}
