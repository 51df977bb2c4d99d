package v1alpha1_test

import (
	"fmt"
	"strings"
	"testing"

	api "github.com/trellis-mesh/trellis/api/v1alpha1"
)

// BenchmarkApply is the API write path for one route: decode, default,
// validate.
func BenchmarkApply(b *testing.B) {
	doc := []byte(httpRouteYAML)
	b.ReportAllocs()
	for b.Loop() {
		obj, err := api.Decode(doc)
		if err != nil {
			b.Fatal(err)
		}
		api.Default(obj)
		if errs := api.Validate(obj); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
}

// BenchmarkConditions computes a route's status in a mesh of 1,000
// Services, as the control plane does for every object a change affects.
func BenchmarkConditions(b *testing.B) {
	var sb strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&sb, "---\napiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: s%d}\nspec: {selector: {app: s%d}, ports: [{port: 8080}]}\n", i, i)
	}
	objs, err := api.DecodeAll(strings.NewReader(sb.String()))
	if err != nil {
		b.Fatal(err)
	}
	l := byKey{}
	for _, o := range objs {
		api.Default(o)
		l[api.Ref{Kind: api.KindOf(o), Namespace: o.GetNamespace(), Name: o.GetName()}] = o
	}
	route, _ := api.Decode([]byte("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [{kind: Service, group: '', name: s1}]\n  rules:\n  - backendRefs: [{name: s2, port: 8080, weight: 9}, {name: s3, port: 8080}]\n"))
	api.Default(route)
	b.ReportAllocs()
	for b.Loop() {
		if cs := api.Conditions(route, l); len(cs) != 2 || cs[1].Status != "True" {
			b.Fatal(cs)
		}
	}
}

// byKey is a map Lookup, as a store snapshot would be.
type byKey map[api.Ref]api.Object

func (m byKey) Get(kind, ns, name string) (api.Object, bool) {
	o, ok := m[api.Ref{Kind: kind, Namespace: ns, Name: name}]
	return o, ok
}

func (m byKey) List(kind string) []api.Object {
	var out []api.Object
	for k, o := range m {
		if k.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}
