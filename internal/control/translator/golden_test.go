package translator

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/tools/txtar"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite the want.yaml sections of testdata/*.txtar")

// TestGolden runs every testdata/*.txtar case: "resources.yaml" (the mesh
// objects), "proxy.yaml" (which proxy asks: {dataplane: ns/name} or
// {proxyless: true, mesh: NAME}) and the expected output "want.yaml" (or
// "error"). Sidecar outputs must also pass the proxy's own validation.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txtar")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test cases: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			sections := map[string][]byte{}
			for _, f := range ar.Files {
				sections[f.Name] = f.Data
			}
			objs := decodeObjects(t, sections["resources.yaml"])
			p := proxyFor(t, sections["proxy.yaml"], objs)
			res, err := Translate(NewIndex(objs, testBundles), p)
			var got []byte
			want, wantName := sections["want.yaml"], "want.yaml"
			if err != nil {
				got, wantName = []byte(err.Error()+"\n"), "error"
				want = sections["error"]
			} else {
				got = render(t, res)
				if err := res.Consistent(); err != nil {
					t.Errorf("output not consistent: %v", err)
				}
				if p.Dataplane != nil {
					validateWithProxy(t, res)
				}
				again, err := Translate(NewIndex(objs, testBundles), p)
				if err != nil || !bytes.Equal(render(t, again), got) {
					t.Errorf("a second translation differs (err %v)", err)
				}
			}
			if *update {
				var out []txtar.File
				for _, f := range ar.Files {
					if f.Name != "want.yaml" && f.Name != "error" {
						out = append(out, f)
					}
				}
				ar.Files = append(out, txtar.File{Name: wantName, Data: got})
				if err := os.WriteFile(file, txtar.Format(ar), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s mismatch (-want +got; rerun with -update to accept):\n%s", wantName, diff)
			}
		})
	}
}

// decodeObjects reads multi-document YAML into the translator's kinds.
func decodeObjects(t testing.TB, data []byte) []v1alpha1.Object {
	t.Helper()
	var objs []v1alpha1.Object
	for i, doc := range strings.Split("\n"+string(data), "\n---") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var tm struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("resources.yaml document %d: %v", i, err)
		}
		o := newObject(tm.Kind)
		if o == nil {
			t.Fatalf("resources.yaml document %d: unknown kind %q", i, tm.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), o); err != nil {
			t.Fatalf("resources.yaml document %d (%s): %v", i, tm.Kind, err)
		}
		objs = append(objs, o)
	}
	return objs
}

type proxySpec struct {
	Dataplane string `json:"dataplane"` // namespace/name or name (namespace default)
	Proxyless bool   `json:"proxyless"`
	Mesh      string `json:"mesh"`
}

func proxyFor(t testing.TB, data []byte, objs []v1alpha1.Object) Proxy {
	t.Helper()
	var ps proxySpec
	if err := yaml.UnmarshalStrict(data, &ps); err != nil {
		t.Fatalf("proxy.yaml: %v", err)
	}
	if ps.Proxyless {
		return Proxy{Mesh: ps.Mesh, Proxyless: true, NodeID: "proxyless"}
	}
	ns, name, ok := strings.Cut(ps.Dataplane, "/")
	if !ok {
		ns, name = v1alpha1.DefaultNamespace, ps.Dataplane
	}
	for _, o := range objs {
		if dp, ok := o.(*v1alpha1.Dataplane); ok && dp.Name == name && v1alpha1.NamespaceOf(dp) == ns {
			return Proxy{Mesh: v1alpha1.MeshOf(dp), Dataplane: dp, NodeID: ps.Dataplane}
		}
	}
	t.Fatalf("proxy.yaml: no Dataplane %s/%s in resources.yaml", ns, name)
	return Proxy{}
}

// render writes the resources as YAML, one protojson document per
// resource, so that golden files are readable and stable.
func render(t testing.TB, r *Resources) []byte {
	t.Helper()
	out := map[string]any{}
	for _, l := range []struct {
		name string
		rs   []types.Resource
	}{{"listeners", r.Listeners}, {"routes", r.Routes}, {"clusters", r.Clusters}, {"endpoints", r.Endpoints}, {"secrets", r.Secrets}} {
		var items []any
		for _, res := range l.rs {
			js, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(res)
			if err != nil {
				t.Fatal(err)
			}
			var v any
			if err := json.Unmarshal(js, &v); err != nil {
				t.Fatal(err)
			}
			items = append(items, v)
		}
		if len(items) > 0 {
			out[l.name] = items
		}
	}
	var svcs []string
	for k := range r.Services {
		svcs = append(svcs, k.String())
	}
	if len(svcs) > 0 {
		slicesSort(svcs)
		out["services"] = svcs
	}
	y, err := yaml.Marshal(out)
	if err != nil {
		t.Fatal(fmt.Errorf("render: %w", err))
	}
	return y
}
