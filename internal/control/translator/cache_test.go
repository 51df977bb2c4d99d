package translator

import (
	"bytes"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"golang.org/x/tools/txtar"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

// TestCacheWarmedByOthers translates every golden case's proxy on an Index
// whose caches other proxies (every Dataplane of the case, and a proxyless
// client of each mesh) have filled, and expects exactly what an Index
// gives without caches: the same output and the same bookkeeping for
// DependsOn.
func TestCacheWarmedByOthers(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txtar")
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
			uncached = true
			cold, err := Translate(NewIndex(objs), p)
			uncached = false
			if err != nil {
				return // error cases
			}
			warm := NewIndex(objs)
			meshes := map[string]bool{}
			for _, o := range objs {
				meshes[v1alpha1.MeshOf(o)] = true
				if dp, ok := o.(*v1alpha1.Dataplane); ok {
					_, _ = Translate(warm, Proxy{Mesh: v1alpha1.MeshOf(dp), Dataplane: dp})
				}
			}
			for m := range meshes {
				_, _ = Translate(warm, Proxy{Mesh: m, Proxyless: true})
			}
			for range 2 {
				got, err := Translate(warm, p)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(render(t, got), render(t, cold)) {
					t.Errorf("output on a warm index differs")
				}
				sameBookkeeping(t, got, cold)
			}
		})
	}
}

func sameBookkeeping(t *testing.T, got, want *Resources) {
	t.Helper()
	if !maps.Equal(got.Services, want.Services) {
		t.Errorf("Services = %v, want %v", got.Services, want.Services)
	}
	if !maps.Equal(got.routes, want.routes) {
		t.Errorf("routes read = %v, want %v", got.routes, want.routes)
	}
	if got.httpAll != want.httpAll || len(got.selectors) != len(want.selectors) {
		t.Errorf("httpAll %v, %d selectors; want %v, %d", got.httpAll, len(got.selectors), want.httpAll, len(want.selectors))
	}
}

// TestCacheFollowsIndex changes a route's weights: the updated Index gives
// the new weights, while the old Index (and what it gave) is untouched.
func TestCacheFollowsIndex(t *testing.T) {
	objs := bigMesh(20, 1)
	var dp *v1alpha1.Dataplane
	var route *gwv1.HTTPRoute
	for _, o := range objs {
		switch o := o.(type) {
		case *v1alpha1.Dataplane:
			if dp == nil {
				dp = o // outbounds svc-7 and svc-13
			}
		case *gwv1.HTTPRoute:
			if o.Name == "svc-7" {
				route = o
			}
		}
	}
	p := Proxy{Mesh: "default", Dataplane: dp}
	old := NewIndex(objs)
	before, err := Translate(old, p)
	if err != nil {
		t.Fatal(err)
	}
	if w := weights(t, before, "outbound:default/svc-7:80"); w != "[90 10]" {
		t.Fatalf("weights before = %s", w)
	}
	changed := route.DeepCopy()
	changed.Spec.Rules[0].BackendRefs[0].Weight = new(int32(50))
	changed.Spec.Rules[0].BackendRefs[1].Weight = new(int32(50))
	next := slices.Clone(objs)
	next[slices.Index(objs, v1alpha1.Object(route))] = changed
	after, err := Translate(old.Update(next, []v1alpha1.Object{route, changed}), p)
	if err != nil {
		t.Fatal(err)
	}
	if w := weights(t, after, "outbound:default/svc-7:80"); w != "[50 50]" {
		t.Errorf("weights after = %s, want [50 50]", w)
	}
	again, err := Translate(old, p)
	if err != nil {
		t.Fatal(err)
	}
	if w := weights(t, again, "outbound:default/svc-7:80"); w != "[90 10]" {
		t.Errorf("old index now gives %s", w)
	}
	if !bytes.Equal(render(t, before), render(t, again)) {
		t.Error("old index's output changed")
	}
}

func weights(t *testing.T, r *Resources, rc string) string {
	t.Helper()
	for _, x := range r.Routes {
		cfg := x.(*routev3.RouteConfiguration)
		if cfg.GetName() != rc {
			continue
		}
		var w []uint32
		for _, c := range cfg.GetVirtualHosts()[0].GetRoutes()[0].GetRoute().GetWeightedClusters().GetClusters() {
			w = append(w, c.GetWeight().GetValue())
		}
		return fmt.Sprint(w)
	}
	t.Fatalf("no route configuration %s", rc)
	return ""
}

// TestUpdateMatchesNewIndex is the carry-over's property test: for every
// golden case and every object, an Index updated by removing the object,
// or by adding it, from a warm Index gives each proxy of the case what an
// Index without caches gives.
func TestUpdateMatchesNewIndex(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txtar")
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var resources []byte
			for _, f := range ar.Files {
				if f.Name == "resources.yaml" {
					resources = f.Data
				}
			}
			objs := decodeObjects(t, resources)
			for i, o := range objs {
				rest := slices.Delete(slices.Clone(objs), i, i+1)
				checkUpdate(t, objs, rest, o, "removing "+describe(o))
				checkUpdate(t, rest, objs, o, "adding "+describe(o))
			}
		})
	}
}

// checkUpdate warms an Index of from, updates it to to, and compares every
// proxy of to with an uncached translation.
func checkUpdate(t *testing.T, from, to []v1alpha1.Object, changed v1alpha1.Object, what string) {
	t.Helper()
	prev := NewIndex(from)
	for _, p := range proxiesOf(from) {
		_, _ = Translate(prev, p)
	}
	next := prev.Update(to, []v1alpha1.Object{changed})
	for _, p := range proxiesOf(to) {
		got, err := Translate(next, p)
		uncached = true
		want, wantErr := Translate(NewIndex(to), p)
		uncached = false
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("%s: proxy %s: err %v, want %v", what, describeProxy(p), err, wantErr)
		}
		if err != nil {
			continue
		}
		if !bytes.Equal(render(t, got), render(t, want)) {
			t.Errorf("%s: proxy %s: updated index gives other output than a new one", what, describeProxy(p))
		}
		sameBookkeeping(t, got, want)
	}
}

// proxiesOf is every Dataplane's proxy and a proxyless client per mesh.
func proxiesOf(objs []v1alpha1.Object) []Proxy {
	var out []Proxy
	meshes := map[string]bool{}
	for _, o := range objs {
		meshes[v1alpha1.MeshOf(o)] = true
		if dp, ok := o.(*v1alpha1.Dataplane); ok {
			out = append(out, Proxy{Mesh: v1alpha1.MeshOf(dp), Dataplane: dp})
		}
	}
	for _, m := range slices.Sorted(maps.Keys(meshes)) {
		out = append(out, Proxy{Mesh: m, Proxyless: true})
	}
	return out
}

func describeProxy(p Proxy) string {
	if p.Dataplane != nil {
		return describe(p.Dataplane)
	}
	return "proxyless@" + p.Mesh
}
