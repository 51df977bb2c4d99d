package v1alpha1_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	api "github.com/trellis-mesh/trellis/api/v1alpha1"
)

// TestExamples decodes, defaults and validates every file of
// examples/mesh, and checks that together they resolve: every object is
// Accepted with all references resolved.
func TestExamples(t *testing.T) {
	files, err := globExamples()
	if err != nil || len(files) < 5 {
		t.Fatalf("examples/mesh: %v files, %v", len(files), err)
	}
	var all objects
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := api.DecodeAll(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, o := range objs {
			api.Default(o)
			if errs := api.Validate(o); len(errs) > 0 {
				t.Errorf("%s: %s %s: %v", f, api.KindOf(o), o.GetName(), errs.ToAggregate())
			}
		}
		all = append(all, objs...)
	}
	for _, o := range all {
		for _, c := range api.Conditions(o, all) {
			if c.Status != "True" {
				t.Errorf("%s %s: %s=%s %s: %s", api.KindOf(o), o.GetName(), c.Type, c.Status, c.Reason, c.Message)
			}
		}
	}
}

var yamlBlock = regexp.MustCompile("(?s)```yaml\n(.*?)```")

// TestReferenceDocs decodes, defaults and validates every ```yaml block of
// docs/reference/*.md. SMI blocks are api/smi's to test.
func TestReferenceDocs(t *testing.T) {
	files, err := filepath.Glob("../../docs/reference/*.md")
	if err != nil || len(files) < 8 {
		t.Fatalf("docs/reference: %v files, %v", len(files), err)
	}
	blocks := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range yamlBlock.FindAllSubmatch(data, -1) {
			var tm struct {
				APIVersion string `json:"apiVersion"`
			}
			first, _, _ := strings.Cut(string(m[1]), "\n---\n")
			if err := yaml.Unmarshal([]byte(first), &tm); err == nil && strings.Contains(tm.APIVersion, "smi-spec.io") {
				continue
			}
			blocks++
			objs, err := api.DecodeAll(bytes.NewReader(m[1]))
			if err != nil {
				t.Errorf("%s block %d: %v", filepath.Base(f), i+1, err)
				continue
			}
			if len(objs) == 0 {
				t.Errorf("%s block %d: no document", filepath.Base(f), i+1)
			}
			for _, o := range objs {
				api.Default(o)
				if errs := api.Validate(o); len(errs) > 0 {
					t.Errorf("%s block %d: %s %s: %v", filepath.Base(f), i+1, api.KindOf(o), o.GetName(), errs.ToAggregate())
				}
			}
		}
	}
	if blocks < 8 {
		t.Fatalf("only %d yaml blocks in docs/reference", blocks)
	}
}

// globExamples lists the example mesh's files: the top level and the
// per-proxy Dataplanes.
func globExamples() ([]string, error) {
	top, err := filepath.Glob("../../examples/mesh/*.yaml")
	if err != nil {
		return nil, err
	}
	dps, err := filepath.Glob("../../examples/mesh/dataplanes/*.yaml")
	return append(top, dps...), err
}
