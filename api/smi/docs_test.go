package smi_test

import (
	"bytes"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/trellis-mesh/trellis/api/smi"
	api "github.com/trellis-mesh/trellis/api/v1alpha1"
)

var yamlBlock = regexp.MustCompile("(?s)```yaml\n(.*?)```")

// TestReferenceDoc decodes and converts every SMI ```yaml block of
// docs/reference/smi.md, and checks that the first TrafficSplit converts to
// exactly the HTTPRoute the page shows after it.
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
		if _, target := docs[0].(*smi.TrafficTarget); target {
			if !errors.Is(err, smi.ErrTrafficTarget) {
				t.Fatalf("block %d: TrafficTarget gave %v", i+1, err)
			}
			continue
		}
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
	// The block right after the first TrafficSplit is its documented result.
	var shown api.Object
	for _, m := range blocks {
		if bytes.Contains(m[1], []byte("converted-from")) {
			shown, err = api.Decode(m[1])
			if err != nil {
				t.Fatal(err)
			}
			api.Default(shown)
			break
		}
	}
	want, _ := api.Encode(shown)
	got, _ := api.Encode(converted[0])
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Fatalf("smi.md's converted HTTPRoute differs from Convert's (-doc +got):\n%s", diff)
	}
}
