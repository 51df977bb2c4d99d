package smi_test

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/trellis-mesh/trellis/api/smi"
	api "github.com/trellis-mesh/trellis/api/v1alpha1"
)

var yamlBlock = regexp.MustCompile("(?s)```yaml\n(.*?)```")

// TestReferenceDoc decodes and converts every SMI ```yaml block of
// docs/reference/smi.md, and checks that each result the page shows (a
// block with the converted-from annotation) is exactly what Convert makes.
func TestReferenceDoc(t *testing.T) {
	data, err := os.ReadFile("../../docs/reference/smi.md")
	if err != nil {
		t.Fatal(err)
	}
	w := world(t)
	for _, doc := range []string{
		"apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: reviews, namespace: shop}\nspec: {selector: {app: reviews}, ports: [{port: 9080}]}\n",
		"apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: reviews-v1, namespace: shop}\nspec: {selector: {app: reviews, version: v1}, ports: [{port: 9080}]}\n",
		"apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: reviews-v2, namespace: shop}\nspec: {selector: {app: reviews, version: v2}, ports: [{port: 9080}]}\n",
		"apiVersion: trellis.dev/v1alpha1\nkind: Dataplane\nmetadata: {name: reviews-v1-1, namespace: shop, labels: {app: reviews, version: v1}}\nspec: {address: 10.0.0.1}\n",
	} {
		o, err := api.Decode([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		api.Default(o)
		w = append(w, o)
	}
	blocks := yamlBlock.FindAllSubmatch(data, -1)
	var converted []api.Object
	n := 0
	for i, m := range blocks {
		if !bytes.Contains(m[1], []byte("smi-spec.io")) || bytes.Contains(m[1], []byte("converted-from")) {
			continue
		}
		n++
		var docs []any
		for _, d := range strings.Split(string(m[1]), "\n---\n") {
			doc, err := smi.Decode([]byte(d))
			if err != nil {
				t.Fatalf("block %d: %v", i+1, err)
			}
			docs = append(docs, doc)
		}
		objs, err := smi.ConvertAll(docs, w)
		if err != nil {
			t.Fatalf("block %d: %v", i+1, err)
		}
		for _, o := range objs {
			api.Default(o)
			if errs := api.Validate(o); len(errs) > 0 {
				t.Fatalf("block %d: %v", i+1, errs.ToAggregate())
			}
		}
		converted = append(converted, objs...)
	}
	if n < 4 || len(converted) == 0 {
		t.Fatalf("%d SMI blocks, %d converted objects", n, len(converted))
	}
	// A block with the converted-from annotation shows what Convert makes
	// of the document it names.
	shown := 0
	for i, m := range blocks {
		if !bytes.Contains(m[1], []byte("converted-from")) {
			continue
		}
		doc, err := api.Decode(m[1])
		if err != nil {
			t.Fatalf("block %d: %v", i+1, err)
		}
		api.Default(doc)
		idx := slices.IndexFunc(converted, func(o api.Object) bool {
			return api.KindOf(o) == api.KindOf(doc) && o.GetName() == doc.GetName()
		})
		if idx < 0 {
			t.Fatalf("block %d: no document converts to %s %s", i+1, api.KindOf(doc), doc.GetName())
		}
		want, _ := api.Encode(doc)
		got, _ := api.Encode(converted[idx])
		if diff := cmp.Diff(string(want), string(got)); diff != "" {
			t.Fatalf("block %d: smi.md's converted %s differs from Convert's (-doc +got):\n%s", i+1, api.KindOf(doc), diff)
		}
		shown++
	}
	if shown < 2 {
		t.Fatalf("%d converted results shown, want the TrafficSplit's and the TrafficTarget's", shown)
	}
}
