package v1alpha1_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	api "github.com/trellis-mesh/trellis/api/v1alpha1"
)

// objects is a Lookup over a slice of defaulted objects.
type objects []api.Object

func (os objects) Get(kind, ns, name string) (api.Object, bool) {
	for _, o := range os {
		if api.KindOf(o) == kind && o.GetNamespace() == ns && o.GetName() == name {
			return o, true
		}
	}
	return nil, false
}

func (os objects) List(kind string) []api.Object {
	var out []api.Object
	for _, o := range os {
		if api.KindOf(o) == kind {
			out = append(out, o)
		}
	}
	return out
}

// world decodes and defaults a YAML stream.
func world(t *testing.T, stream string) objects {
	t.Helper()
	objs, err := api.DecodeAll(strings.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		api.Default(o)
	}
	return objs
}

const conditionsWorld = `
apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata: {name: other}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: api}
spec: {selector: {app: api}, ports: [{port: 8080}]}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: api-v1}
spec: {selector: {app: api, version: v1}, ports: [{port: 8080}]}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: db}
spec: {selector: {app: db}, ports: [{port: 5432, protocol: tcp}]}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: billing, labels: {trellis.dev/mesh: other}}
spec: {selector: {app: billing}, ports: [{port: 8080}]}
`

// cond renders conditions as "Type=Status/Reason: message" lines.
func cond(cs []metav1.Condition) []string {
	var out []string
	for _, c := range cs {
		s := fmt.Sprintf("%s=%s/%s", c.Type, c.Status, c.Reason)
		if c.Message != "" {
			s += ": " + c.Message
		}
		out = append(out, s)
	}
	return out
}

func TestConditions(t *testing.T) {
	w := world(t, conditionsWorld)
	route := func(parents, backends string) string {
		return "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  parentRefs: " + parents + "\n  rules:\n  - backendRefs: " + backends + "\n"
	}
	tests := []struct {
		name string
		doc  string
		want []string
	}{
		{"service", serviceYAML, []string{"Accepted=True/Accepted"}},
		{"mesh", "apiVersion: trellis.dev/v1alpha1\nkind: Mesh\nmetadata: {name: m}\n", []string{"Accepted=True/Accepted"}},
		{"invalid", strings.Replace(serviceYAML, "port: 8080", "port: 0", 1),
			[]string{"Accepted=False/Invalid: spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"}},
		{"missing mesh", "apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: s, labels: {trellis.dev/mesh: nowhere}}\nspec: {selector: {a: b}, ports: [{port: 1}]}\n",
			[]string{`Accepted=False/MeshNotFound: Mesh "nowhere" does not exist`}},
		{"route resolved", route("[{kind: Service, group: '', name: api}]", "[{name: api-v1, port: 8080, weight: 9}, {name: api, port: 8080}]"),
			[]string{"Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"}},
		{"missing backend", route("[{kind: Service, group: '', name: api}]", "[{name: api-v2, port: 8080}, {name: api-v1, port: 9999}]"),
			[]string{"Accepted=True/Accepted", "ResolvedRefs=False/BackendNotFound: spec.rules[0].backendRefs[0]: Service default/api-v2 not found; spec.rules[0].backendRefs[1]: Service default/api-v1 has no port 9999"}},
		{"missing parent", route("[{kind: Service, group: '', name: apx}]", "[{name: api-v1, port: 8080}]"),
			[]string{`Accepted=False/NoMatchingParent: no parentRef resolves to a Service of mesh "default"`, "ResolvedRefs=False/ParentNotFound: spec.parentRefs[0]: Service default/apx not found"}},
		{"parent port", route("[{kind: Service, group: '', name: api, port: 80}, {kind: Service, group: '', name: api, sectionName: http}]", "[{name: api-v1, port: 8080}]"),
			[]string{`Accepted=False/NoMatchingParent: no parentRef resolves to a Service of mesh "default"`,
				`ResolvedRefs=False/ParentNotFound: spec.parentRefs[0]: Service default/api has no port 80; spec.parentRefs[1]: Service default/api has no port named "http"`}},
		{"cross-mesh refs are not resolved", route("[{kind: Service, group: '', name: api}]", "[{name: billing, port: 8080}]"),
			[]string{"Accepted=True/Accepted", `ResolvedRefs=False/RefNotPermitted: spec.rules[0].backendRefs[0]: Service default/billing is in mesh "other", not "default"`}},
		{"cross-mesh parent", route("[{kind: Service, group: '', name: billing}]", "[{name: api, port: 8080}]"),
			[]string{`Accepted=False/NoMatchingParent: no parentRef resolves to a Service of mesh "default"`,
				`ResolvedRefs=False/RefNotPermitted: spec.parentRefs[0]: Service default/billing is in mesh "other", not "default"`}},
		{"protocol", route("[{kind: Service, group: '', name: db}]", "[{name: db, port: 5432}]"),
			[]string{`Accepted=False/UnsupportedValue: spec.parentRefs[0]: no port of Service default/db speaks a protocol a HTTPRoute serves ("http", "http2", "grpc")`, "ResolvedRefs=True/ResolvedRefs"}},
		{"tcp route on a tcp port", "apiVersion: gateway.networking.k8s.io/v1\nkind: TCPRoute\nmetadata: {name: db}\nspec:\n  parentRefs: [{kind: Service, group: '', name: db}]\n  rules: [{backendRefs: [{name: db, port: 5432}]}]\n",
			[]string{"Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"}},
		{"mirror backend", "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [{kind: Service, group: '', name: api}]\n  rules:\n  - filters: [{type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 80}}}]\n    backendRefs: [{name: api, port: 8080}]\n",
			[]string{"Accepted=True/Accepted", "ResolvedRefs=False/BackendNotFound: spec.rules[0].filters[0].requestMirror.backendRef: Service default/shadow not found"}},
		{"dataplane outbound", "apiVersion: trellis.dev/v1alpha1\nkind: Dataplane\nmetadata: {name: d}\nspec:\n  address: 10.0.0.1\n  outbound: [{service: api, localPort: 1}, {service: nope, localPort: 2}, {service: api, port: 1, localPort: 3}]\n",
			[]string{"Accepted=True/Accepted", "ResolvedRefs=False/BackendNotFound: spec.outbound[1]: Service default/nope not found; spec.outbound[2]: Service default/api has no port 1"}},
		{"policy target missing", "apiVersion: trellis.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: p}\nspec:\n  targetRefs: [{group: '', kind: Service, name: nope}]\n  timeouts: {request: 1s}\n",
			[]string{`Accepted=False/TargetNotFound: no target exists in mesh "default"`, "ResolvedRefs=False/TargetNotFound: spec.targetRefs[0]: Service default/nope not found"}},
		{"policy cross-mesh target", "apiVersion: trellis.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: p}\nspec:\n  targetRefs: [{group: '', kind: Service, name: billing}, {group: '', kind: Service, name: api}]\n  timeouts: {request: 1s}\n",
			[]string{"Accepted=True/Accepted", `ResolvedRefs=False/RefNotPermitted: spec.targetRefs[0]: Service default/billing is in mesh "other", not "default"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obj, err := api.Decode([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			api.Default(obj)
			obj.SetGeneration(3)
			cs := api.Conditions(obj, w)
			if diff := cmp.Diff(tc.want, cond(cs)); diff != "" {
				t.Fatalf("conditions (-want +got):\n%s", diff)
			}
			for _, c := range cs {
				if c.ObservedGeneration != 3 {
					t.Fatalf("%s: ObservedGeneration = %d", c.Type, c.ObservedGeneration)
				}
			}
		})
	}
}

func TestConditionsPolicyConflict(t *testing.T) {
	w := world(t, conditionsWorld)
	pol := func(name string, created time.Time, targets ...string) *api.TrafficPolicy {
		p := &api.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(created)}}
		for _, t := range targets {
			p.Spec.TargetRefs = append(p.Spec.TargetRefs, gwv1.LocalPolicyTargetReference{Kind: "Service", Name: gwv1.ObjectName(t)})
		}
		p.Spec.Timeouts = &api.Timeouts{Request: &metav1.Duration{Duration: time.Second}}
		api.Default(p)
		return p
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	old := pol("m-old", t0, "api")
	young := pol("aa-young", t0.Add(time.Minute), "db", "api")
	tie := pol("z-tie", t0, "api")
	other := pol("other-target", t0.Add(-time.Hour), "db-v2")
	unstored := pol("aa-new", time.Time{}, "api")
	all := append(w, old, young, tie, other)

	tests := []struct {
		name string
		p    *api.TrafficPolicy
		l    objects
		want string
	}{
		{"oldest wins", old, all, "Accepted=True/Accepted"},
		{"younger is conflicted", young, all, "Accepted=False/Conflicted: Service default/api is also targeted by the older TrafficPolicy default/m-old"},
		{"same age: later name loses", tie, all, "Accepted=False/Conflicted: Service default/api is also targeted by the older TrafficPolicy default/m-old"},
		{"same age: first name wins", old, append(all, pol("aa-tie", t0, "api")), "Accepted=False/Conflicted: Service default/api is also targeted by the older TrafficPolicy default/aa-tie"},
		{"not yet stored is newest", unstored, all, "Accepted=False/Conflicted: Service default/api is also targeted by the older TrafficPolicy default/m-old"},
		{"other namespace does not conflict", young, append(w, func() *api.TrafficPolicy { p := pol("x", t0, "api"); p.Namespace = "shop"; return p }()), "Accepted=True/Accepted"},
		{"other mesh does not conflict", young, append(w, func() *api.TrafficPolicy {
			p := pol("x", t0, "api")
			p.Labels[api.MeshLabel] = "other"
			return p
		}()), "Accepted=True/Accepted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := cond(api.Conditions(tc.p, tc.l))
			if len(got) == 0 || got[0] != tc.want {
				t.Fatalf("Accepted = %v\nwant %s", got, tc.want)
			}
		})
	}
}

func TestRefs(t *testing.T) {
	w := world(t, `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: shop}
spec:
  parentRefs: [{kind: Service, group: '', name: api}, {name: gw, namespace: infra}]
  rules:
  - filters: [{type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 80}}}]
    backendRefs:
    - {name: api-v1, port: 80}
    - name: api-v2
      namespace: other
      port: 80
      filters: [{type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 80}}}]
  - backendRefs: [{name: api-v1, port: 80}]
---
apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: d, namespace: shop}
spec: {outbound: [{service: a, localPort: 1}, {service: b, namespace: x, localPort: 2}]}
---
apiVersion: trellis.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: p, namespace: shop}
spec: {targetRefs: [{group: '', kind: Service, name: api}, {group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: TCPRoute
metadata: {name: t}
spec: {parentRefs: [{kind: Service, name: db}], rules: [{backendRefs: [{name: db-2, port: 5}]}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g}
spec: {parentRefs: [{kind: Service, name: greeter}], rules: [{backendRefs: [{name: greeter-2, port: 5, filters: [{type: RequestMirror, requestMirror: {backendRef: {name: m, port: 1}}}]}]}]}
`)
	var got []string
	for _, o := range w {
		var refs []string
		for _, r := range api.Refs(o) {
			refs = append(refs, r.String())
		}
		got = append(got, api.KindOf(o)+": "+strings.Join(refs, ", "))
	}
	want := []string{
		"HTTPRoute: Service shop/api, Gateway infra/gw, Service shop/api-v1, Service other/api-v2, Service shop/shadow",
		"Dataplane: Service shop/a, Service x/b",
		"TrafficPolicy: Service shop/api, HTTPRoute shop/r",
		"TCPRoute: Service default/db, Service default/db-2",
		"GRPCRoute: Service default/greeter, Service default/greeter-2, Service default/m",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Refs (-want +got):\n%s", diff)
	}
	if refs := api.Refs(service()); len(refs) != 0 {
		t.Fatalf("a Service references nothing, got %v", refs)
	}
}
