package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/trellis-mesh/trellis/internal/control/client"
)

// clientOptions are the flags every command talking to the control plane
// shares.
type clientOptions struct {
	server string
	token  string
	caFile string
}

func (c *clientOptions) bind(f *pflag.FlagSet) {
	f.StringVar(&c.server, "server", "", "control-plane API URL (default: TRELLIS_SERVER, the client config, or "+client.DefaultServer+")")
	f.StringVar(&c.token, "token", "", "API token (default: TRELLIS_TOKEN or the client config)")
	f.StringVar(&c.caFile, "ca-file", "", "PEM CA certificate an https server must chain to, e.g. the control plane's ca.crt (default: TRELLIS_CA_FILE or the client config)")
}

func (c *clientOptions) client() (*client.Client, error) {
	cfg, err := client.LoadConfig()
	if err != nil {
		return nil, err
	}
	if c.server != "" {
		cfg.Server = c.server
	}
	if c.token != "" {
		cfg.Token = c.token
	}
	if c.caFile != "" {
		cfg.CAFile, cfg.CA = c.caFile, ""
	}
	return client.New(cfg)
}

type applyOptions struct {
	clientOptions
	files  []string
	output string
}

func newApplyCmd() *cobra.Command {
	o := &applyOptions{}
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|-",
		Short: "Create or update mesh resources from YAML or JSON documents",
		Long: "Send documents to the control plane. Every document is validated first; if any\n" +
			"is invalid, nothing is written and every problem is printed with its field\n" +
			"path. Applying the same documents again changes nothing.\n\n" +
			"A directory applies every *.yaml, *.yml and *.json file in it, in name order.",
		Example: "  trellis apply -f examples/mesh/\n  cat route.yaml | trellis apply -f -",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(o.files) == 0 {
				return errors.New("-f FILE|DIR|- is required")
			}
			if err := checkOutput(o.output, "name", "json"); err != nil {
				return err
			}
			body, err := readDocuments(o.files, cmd.InOrStdin())
			if err != nil {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			results, err := c.Apply(cmd.Context(), bytes.NewReader(body))
			if err != nil {
				return err
			}
			if o.output == "json" {
				return writeJSON(cmd.OutOrStdout(), results)
			}
			for _, r := range results {
				fmt.Fprintf(cmd.OutOrStdout(), "%s/%s %s\n", strings.ToLower(r.Kind), r.Name, r.Action)
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVarP(&o.files, "filename", "f", nil, "file, directory or - for stdin (repeatable)")
	cmd.Flags().StringVarP(&o.output, "output", "o", "name", "name or json")
	o.bind(cmd.Flags())
	return cmd
}

// readDocuments concatenates the documents of every named file, directory
// and "-" into one YAML stream.
func readDocuments(names []string, stdin io.Reader) ([]byte, error) {
	var buf bytes.Buffer
	add := func(data []byte) {
		if buf.Len() > 0 {
			buf.WriteString("\n---\n")
		}
		buf.Write(data)
	}
	for _, name := range names {
		if name == "-" {
			data, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("stdin: %w", err)
			}
			add(data)
			continue
		}
		fi, err := os.Stat(name)
		if err != nil {
			return nil, err
		}
		files := []string{name}
		if fi.IsDir() {
			if files, err = documentFiles(name); err != nil {
				return nil, err
			}
			if len(files) == 0 {
				return nil, fmt.Errorf("%s: no *.yaml, *.yml or *.json files", name)
			}
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			add(data)
		}
	}
	return buf.Bytes(), nil
}

func documentFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".yaml", ".yml", ".json":
			if !e.IsDir() {
				out = append(out, filepath.Join(dir, e.Name()))
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

func checkOutput(got string, allowed ...string) error {
	for _, a := range allowed {
		if got == a {
			return nil
		}
	}
	return fmt.Errorf("-o %q: want %s", got, strings.Join(allowed, ", "))
}

type deleteOptions struct {
	clientOptions
	namespace string
}

func newDeleteCmd() *cobra.Command {
	o := &deleteOptions{}
	cmd := &cobra.Command{
		Use:     "delete KIND NAME",
		Short:   "Delete a mesh resource",
		Example: "  trellis delete httproute reviews\n  trellis delete dataplane web-1 -n shop",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			raw, err := c.Delete(cmd.Context(), args[0], o.namespace, args[1])
			if err != nil {
				return err
			}
			obj, err := decodeRaw(raw)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s/%s deleted\n", strings.ToLower(kindOf(obj)), obj.GetName())
			return err
		},
	}
	cmd.Flags().StringVarP(&o.namespace, "namespace", "n", "", "namespace (default: default)")
	o.bind(cmd.Flags())
	return cmd
}
