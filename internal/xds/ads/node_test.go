package ads

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseDataplane(t *testing.T) {
	for _, tc := range []struct {
		name, doc, id, mesh, err string
	}{
		{name: "defaults", doc: "kind: Dataplane\nmetadata: {name: a}\nspec: {address: 10.0.0.1}", id: "default/a", mesh: "default"},
		{name: "namespace and mesh", doc: `{"metadata": {"name": "a", "namespace": "ns", "labels": {"trellis.dev/mesh": "m"}}}`, id: "ns/a", mesh: "m"},
		{name: "no name", doc: "metadata: {namespace: x}", err: "metadata.name: required"},
		{name: "no metadata", doc: "kind: Dataplane", err: "metadata: required"},
		{name: "wrong kind", doc: "kind: Service\nmetadata: {name: a}", err: "kind: want Dataplane, got Service"},
		{name: "bad labels", doc: "metadata: {name: a, labels: [x]}", err: "metadata.labels: want a mapping"},
		{name: "bad label value", doc: "metadata: {name: a, labels: {x: {y: 1}}}", err: `metadata.labels["x"]: want a string`},
		{name: "bad namespace", doc: "metadata: {name: a, namespace: 3}", err: "metadata.namespace: want a string"},
		{name: "empty", doc: "", err: "empty document"},
		{name: "not yaml", doc: "metadata: [", err: "not a YAML or JSON document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := ParseDataplane([]byte(tc.doc))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n.GetId() != tc.id || n.GetCluster() != tc.mesh {
				t.Errorf("node = %s in %s, want %s in %s", n.GetId(), n.GetCluster(), tc.id, tc.mesh)
			}
			if n.GetMetadata().GetFields()[DataplaneMetadataKey].GetStructValue().GetFields()["metadata"] == nil {
				t.Errorf("metadata does not carry the document: %v", n.GetMetadata())
			}
		})
	}
}

func TestNodeFromDataplaneNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dp.yaml")
	if err := os.WriteFile(path, []byte("metadata: {}"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := NodeFromDataplane(path)
	if err == nil || !strings.Contains(err.Error(), path+": metadata.name: required") {
		t.Errorf("error = %v, want the path and the field", err)
	}
	_, err = NodeFromDataplane(filepath.Join(t.TempDir(), "missing.yaml"))
	if err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("error = %v, want the missing path", err)
	}
}
