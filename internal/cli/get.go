package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
	"github.com/trellis-mesh/trellis/internal/cli/render"
)

type getOptions struct {
	clientOptions
	namespace string
	output    string
}

func newGetCmd() *cobra.Command {
	o := &getOptions{}
	cmd := &cobra.Command{
		Use:   "get KIND [NAME]",
		Short: "List mesh resources, or show one",
		Long: "List the resources of a kind (all namespaces unless -n is given) or show one.\n" +
			"Kinds: mesh, service (svc), dataplane (dp), trafficpolicy (tp), httproute,\n" +
			"grpcroute, tcproute; plural forms work too.",
		Example: "  trellis get services\n  trellis get httproute reviews -o yaml",
		Args:    cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(o.output, "table", "yaml", "json"); err != nil {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			var raws []json.RawMessage
			if len(args) == 2 {
				raw, err := c.Get(cmd.Context(), args[0], o.namespace, args[1])
				if err != nil {
					return err
				}
				raws = []json.RawMessage{raw}
			} else if raws, err = c.List(cmd.Context(), args[0], o.namespace); err != nil {
				return err
			}
			objs := make([]v1alpha1.Object, 0, len(raws))
			for _, raw := range raws {
				obj, err := decodeRaw(raw)
				if err != nil {
					return err
				}
				objs = append(objs, obj)
			}
			w := cmd.OutOrStdout()
			switch o.output {
			case "json":
				if len(args) == 2 {
					return writeJSON(w, objs[0])
				}
				return writeJSON(w, map[string]any{"items": objs})
			case "yaml":
				return writeYAML(w, objs)
			}
			if len(objs) == 0 {
				_, err := fmt.Fprintf(cmd.ErrOrStderr(), "no %s found\n", args[0])
				return err
			}
			return render.Table(w, objs, time.Now())
		},
	}
	cmd.Flags().StringVarP(&o.namespace, "namespace", "n", "", "namespace (default: all for lists, default for one)")
	cmd.Flags().StringVarP(&o.output, "output", "o", "table", "table, yaml or json")
	o.bind(cmd.Flags())
	return cmd
}

type describeOptions struct {
	clientOptions
	namespace string
	output    string
}

func newDescribeCmd() *cobra.Command {
	o := &describeOptions{}
	cmd := &cobra.Command{
		Use:     "describe KIND NAME",
		Short:   "Show a resource with its status, what it references and the proxies it affects",
		Example: "  trellis describe service reviews\n  trellis describe dataplane web-1 -o json",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(o.output, "text", "json"); err != nil {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			d, err := c.Describe(cmd.Context(), args[0], o.namespace, args[1])
			if err != nil {
				return err
			}
			if o.output == "json" {
				return writeJSON(cmd.OutOrStdout(), d)
			}
			obj, err := decodeRaw(d.Object)
			if err != nil {
				return err
			}
			return render.Describe(cmd.OutOrStdout(), obj, d.Refs, d.Proxies)
		},
	}
	cmd.Flags().StringVarP(&o.namespace, "namespace", "n", "", "namespace (default: default)")
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "text or json")
	o.bind(cmd.Flags())
	return cmd
}

func decodeRaw(raw json.RawMessage) (v1alpha1.Object, error) {
	obj, err := v1alpha1.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("the control plane sent a document this CLI cannot read (versions differ?): %w", err)
	}
	return obj, nil
}

func kindOf(obj v1alpha1.Object) string { return v1alpha1.KindOf(obj) }

func writeJSON(w io.Writer, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", data)
	return err
}

func writeYAML(w io.Writer, objs []v1alpha1.Object) error {
	for i, obj := range objs {
		data, err := yaml.Marshal(obj)
		if err != nil {
			return err
		}
		if i > 0 {
			io.WriteString(w, "---\n")
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
	}
	return nil
}
