package smi_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/trellis-mesh/trellis/api/smi"
	api "github.com/trellis-mesh/trellis/api/v1alpha1"
)

// targetWorld adds Dataplanes to world: reader-1 runs as the identity
// "reports" and is selected by the Service multi only.
func targetWorld(t *testing.T) objects {
	t.Helper()
	w := world(t)
	objs, err := api.DecodeAll(strings.NewReader(`
apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: reader-1, labels: {app: multi, role: reader}}
spec: {address: 10.0.0.7, identity: reports}
---
apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: reader-2, labels: {app: multi, trellis.dev/mesh: other}}
spec: {address: 10.0.0.8, identity: reports}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		api.Default(o)
	}
	return append(w, objs...)
}

const readers = `apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: report-readers, labels: {team: a}}
spec:
  destination: {kind: ServiceAccount, name: reports, namespace: default}
  sources:
  - {kind: ServiceAccount, name: web, namespace: default}
  - {kind: ServiceAccount, name: db}
  rules:
  - kind: HTTPRouteGroup
    name: reports-api
    matches: [read]
  - {kind: TCPRoute, name: raw}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: reports-api}
spec:
  matches:
  - name: read
    methods: [GET, HEAD]
    pathRegex: '/reports/.*'
    headers: {x-tenant: 'blue|green', accept: '.*json.*'}
  - {name: write, methods: [POST]}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: raw}
spec: {matches: {ports: [7000]}}`

func TestConvertTarget(t *testing.T) {
	w := targetWorld(t)
	objs, err := smi.ConvertAll(decodeAll(t, readers), w)
	if err != nil {
		t.Fatal(err)
	}
	got := converted(t, objs, w)
	want := `---
apiVersion: trellis.dev/v1alpha1
kind: AccessPolicy
metadata:
  annotations:
    trellis.dev/converted-from: access.smi-spec.io/v1alpha3/TrafficTarget/report-readers
  labels:
    team: a
    trellis.dev/mesh: default
  name: report-readers
  namespace: default
spec:
  action: ALLOW
  rules:
  - from:
    - mesh: default
      service: web
    - mesh: default
      service: db
    to:
    - headers:
      - name: accept
        regex: .*json.*
      - name: x-tenant
        regex: blue|green
      methods:
      - GET
      - HEAD
      paths:
      - regex: /reports/.*
    - ports:
      - 7000
  targetRefs:
  - group: ""
    kind: Service
    name: multi
status: {}
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("converted (-want +got):\n%s", diff)
	}
}

// targetSummary renders a converted AccessPolicy compactly:
// "targets | from | to".
func targetSummary(t *testing.T, objs []api.Object, l objects) string {
	t.Helper()
	converted(t, objs, l)
	if len(objs) != 1 {
		t.Fatalf("converted %d objects, want one AccessPolicy", len(objs))
	}
	p := objs[0].(*api.AccessPolicy)
	var targets, from []string
	for _, r := range p.Spec.TargetRefs {
		targets = append(targets, string(r.Name))
	}
	for _, f := range p.Spec.Rules[0].From {
		from = append(from, f.Service)
	}
	return strings.Join(targets, ",") + " | " + strings.Join(from, ",") + " | " + yamlString(p.Spec.Rules[0].To)
}

func TestConvertTargetShapes(t *testing.T) {
	w := targetWorld(t)
	tests := []struct {
		name, stream, want string
	}{
		{"no rules: every request; no Dataplane runs as web: the Service web", `apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: t}
spec:
  destination: {kind: ServiceAccount, name: web}
  sources: [{kind: ServiceAccount, name: db}]`, "web | db | null"},
		{"a match without restrictions allows everything", `apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: t}
spec:
  destination: {kind: ServiceAccount, name: reports}
  sources: [{kind: ServiceAccount, name: web}]
  rules:
  - {kind: HTTPRouteGroup, name: g, matches: [write]}
  - {kind: HTTPRouteGroup, name: g, matches: [any]}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: g}
spec:
  matches:
  - {name: write, methods: [POST]}
  - {name: any, methods: ['*']}`, "multi | web | null"},
		{"all matches of a group when the rule names none", `apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: t}
spec:
  destination: {kind: ServiceAccount, name: reports}
  sources: [{kind: ServiceAccount, name: web}]
  rules: [{kind: HTTPRouteGroup, name: g}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: g}
spec:
  matches:
  - {name: write, methods: [POST, PUT]}
  - {name: health, pathRegex: /healthz}`, "multi | web | - methods:\n  - POST\n  - PUT\n- paths:\n  - regex: /healthz"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := smi.ConvertAll(decodeAll(t, tc.stream), w)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, targetSummary(t, objs, w)); diff != "" {
				t.Fatalf("converted (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConvertTargetErrors(t *testing.T) {
	w := targetWorld(t)
	target := func(spec string) string {
		return "apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {name: t, namespace: shop}\nspec:\n" + spec
	}
	src := "  sources: [{kind: ServiceAccount, name: web}]\n"
	dst := "  destination: {kind: ServiceAccount, name: reports}\n"
	tests := []struct {
		name, stream, want string
	}{
		{"destination kind", target("  destination: {kind: Group, name: x}\n" + src),
			`TrafficTarget shop/t: spec.destination.kind: Unsupported value: "Group": supported values: "ServiceAccount"`},
		{"destination name", target("  destination: {kind: ServiceAccount}\n" + src),
			"TrafficTarget shop/t: spec.destination.name: Required value"},
		{"destination namespace", target("  destination: {kind: ServiceAccount, name: reports, namespace: default}\n" + src),
			`TrafficTarget shop/t: spec.destination.namespace: Invalid value: "default": must be the TrafficTarget's namespace "shop"`},
		{"no sources", target(dst),
			"TrafficTarget shop/t: spec.sources: Required value: at least one ServiceAccount"},
		{"source kind", target(dst + "  sources: [{kind: ServiceAccount, name: web}, {kind: User, name: bob}]\n"),
			`TrafficTarget shop/t: spec.sources[1].kind: Unsupported value: "User": supported values: "ServiceAccount"`},
		{"group not in the batch", target(dst + src + "  rules: [{kind: HTTPRouteGroup, name: g}]\n"),
			"TrafficTarget shop/t: spec.rules[0]: HTTPRouteGroup shop/g not found: Trellis does not store HTTPRouteGroups, apply it in the same batch as the TrafficTarget"},
		{"tcp route not in the batch", target(dst + src + "  rules: [{kind: TCPRoute, name: r}]\n"),
			"TrafficTarget shop/t: spec.rules[0]: SMI TCPRoute shop/r not found: Trellis does not store SMI TCPRoutes, apply it in the same batch as the TrafficTarget"},
		{"match name", target(dst+src+"  rules: [{kind: HTTPRouteGroup, name: g, matches: [read, nope]}]\n") +
			"\n---\napiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: g, namespace: shop}\nspec: {matches: [{name: read, methods: [GET]}]}",
			`TrafficTarget shop/t: spec.rules[0].matches[1]: HTTPRouteGroup shop/g has no match named "nope"`},
		{"rule kind", target(dst + src + "  rules: [{kind: UDPRoute, name: u}]\n"),
			`TrafficTarget shop/t: spec.rules[0].kind: Unsupported value: "UDPRoute": supported values: "HTTPRouteGroup", "TCPRoute"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := smi.ConvertAll(decodeAll(t, tc.stream), w)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error = %v\nwant %s", err, tc.want)
			}
			if len(objs) != 0 {
				t.Fatalf("converted %d objects despite the error", len(objs))
			}
		})
	}
}
