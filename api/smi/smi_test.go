package smi_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/trellis-mesh/trellis/api/smi"
	api "github.com/trellis-mesh/trellis/api/v1alpha1"
)

// objects is a Lookup over a slice of objects.
type objects []api.Object

func (os objects) Get(kind, ns, name string) (api.Object, bool) {
	for _, o := range os {
		if api.KindOf(o) == kind && api.NamespaceOf(o) == ns && o.GetName() == name {
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

const services = `
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 8080}]}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: db}
spec: {selector: {app: db}, ports: [{port: 5432, protocol: tcp}]}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: multi}
spec:
  selector: {app: multi}
  ports: [{name: http, port: 80}, {name: metrics, port: 9090}, {name: raw, port: 7000, protocol: tcp}]
`

func world(t *testing.T) objects {
	t.Helper()
	objs, err := api.DecodeAll(strings.NewReader(services))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		api.Default(o)
	}
	return objs
}

func decodeAll(t *testing.T, stream string) []any {
	t.Helper()
	var docs []any
	for _, d := range strings.Split(stream, "\n---\n") {
		doc, err := smi.Decode([]byte(d))
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, doc)
	}
	return docs
}

func TestIsSMI(t *testing.T) {
	for v, want := range map[string]bool{
		"split.smi-spec.io/v1alpha4": true, "specs.smi-spec.io/v1alpha1": true, "access.smi-spec.io/v1alpha3": true,
		"trellis.dev/v1alpha1": false, "gateway.networking.k8s.io/v1": false, "v1": false, "a/b/c": false,
	} {
		if got := smi.IsSMI(v); got != want {
			t.Errorf("IsSMI(%q) = %v", v, got)
		}
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"split v1alpha4", "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: s}\nspec: {service: web, backends: [{service: web-v1, weight: 1}], matches: [{kind: HTTPRouteGroup, name: g}]}\n", ""},
		{"split v1alpha2", "apiVersion: split.smi-spec.io/v1alpha2\nkind: TrafficSplit\nmetadata: {name: s}\nspec: {service: web, backends: [{service: web-v1, weight: 1}]}\n", ""},
		{"v1alpha2 has no matches", "apiVersion: split.smi-spec.io/v1alpha2\nkind: TrafficSplit\nmetadata: {name: s}\nspec: {service: web, backends: [], matches: []}\n",
			"spec.matches: unknown field (TrafficSplit v1alpha2 has no matches; use v1alpha4)"},
		{"unknown field", "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: s}\nspec: {service: web, backends: [{service: a, wieght: 1}]}\n",
			"spec.backends[0].wieght: unknown field"},
		{"unsupported version", "apiVersion: split.smi-spec.io/v1alpha1\nkind: TrafficSplit\n",
			`apiVersion: Unsupported value: "split.smi-spec.io/v1alpha1": supported SMI versions: "split.smi-spec.io/v1alpha2", "split.smi-spec.io/v1alpha3", "split.smi-spec.io/v1alpha4", "specs.smi-spec.io/v1alpha4", "access.smi-spec.io/v1alpha3"`},
		{"kind", "apiVersion: specs.smi-spec.io/v1alpha4\nkind: UDPRoute\n",
			`kind: Unsupported value: "UDPRoute": supported values for specs.smi-spec.io/v1alpha4: ["HTTPRouteGroup" "TCPRoute"]`},
		{"missing kind", "apiVersion: specs.smi-spec.io/v1alpha4\n", "kind: Required value"},
		{"route group", "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: g}\nspec:\n  matches:\n  - {name: m, pathRegex: /x, methods: [GET], headers: {x-a: b}}\n", ""},
		{"route group header list", "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: g}\nspec:\n  matches:\n  - name: m\n    headers:\n    - user-agent: '.*curl.*'\n", ""},
		{"tcp route", "apiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\nmetadata: {name: t}\nspec: {matches: {name: m, ports: [5432]}}\n", ""},
		{"traffic target", "apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {name: t}\nspec:\n  destination: {kind: ServiceAccount, name: db}\n  sources: [{kind: ServiceAccount, name: web, namespace: default}]\n  rules: [{kind: TCPRoute, name: t}]\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := smi.Decode([]byte(tc.doc))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Fatalf("error:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
	doc, err := smi.Decode([]byte("apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: g}\nspec:\n  matches:\n  - name: m\n    headers:\n    - user-agent: '.*curl.*'\n    - x-b: '1'\n"))
	if err != nil {
		t.Fatal(err)
	}
	if h := doc.(*smi.HTTPRouteGroup).Spec.Matches[0].Headers; h["user-agent"] != ".*curl.*" || h["x-b"] != "1" {
		t.Fatalf("headers = %v", h)
	}
}

// converted renders objects as YAML, defaulted and validated.
func converted(t *testing.T, objs []api.Object, l objects) string {
	t.Helper()
	var b strings.Builder
	for _, o := range objs {
		api.Default(o)
		if errs := api.Validate(o); len(errs) > 0 {
			t.Fatalf("converted %s %s is invalid: %v", api.KindOf(o), o.GetName(), errs)
		}
		for _, c := range api.Conditions(o, l) {
			if c.Status != "True" {
				t.Errorf("%s %s: %s %s: %s", api.KindOf(o), o.GetName(), c.Type, c.Reason, c.Message)
			}
		}
		js, err := api.Encode(o)
		if err != nil {
			t.Fatal(err)
		}
		y, _ := yaml.JSONToYAML(js)
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.String()
}

func TestConvertSplit(t *testing.T) {
	w := world(t)
	docs := decodeAll(t, `apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: web-canary, labels: {team: a}}
spec:
  service: web
  backends:
  - {service: web, weight: 90}
  - {service: web, weight: 10}`)
	objs, err := smi.Convert(docs[0], w)
	if err != nil {
		t.Fatal(err)
	}
	got := converted(t, objs, w)
	want := `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  annotations:
    trellis.dev/converted-from: split.smi-spec.io/v1alpha4/TrafficSplit/web-canary
  labels:
    team: a
    trellis.dev/mesh: default
  name: web-canary
  namespace: default
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: web
  rules:
  - backendRefs:
    - group: ""
      kind: Service
      name: web
      port: 8080
      weight: 90
    - group: ""
      kind: Service
      name: web
      port: 8080
      weight: 10
    matches:
    - path:
        type: PathPrefix
        value: /
status:
  parents: null
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("converted (-want +got):\n%s", diff)
	}
}

// summary renders a converted route compactly: kind name parents | rules.
func summary(t *testing.T, objs []api.Object, l objects) []string {
	t.Helper()
	converted(t, objs, l) // defaults, validates and checks conditions
	var out []string
	for _, o := range objs {
		js, _ := api.Encode(o)
		var doc struct {
			Spec struct {
				ParentRefs []map[string]any `json:"parentRefs"`
				Rules      []struct {
					Matches     []map[string]any `json:"matches"`
					BackendRefs []struct {
						Name   string `json:"name"`
						Port   int    `json:"port"`
						Weight int    `json:"weight"`
					} `json:"backendRefs"`
				} `json:"rules"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(js, &doc); err != nil {
			t.Fatal(err)
		}
		s := api.KindOf(o) + " " + o.GetName() + " parent"
		for _, p := range doc.Spec.ParentRefs {
			s += " " + p["name"].(string)
			if port, ok := p["port"]; ok {
				s += ":" + strings.TrimSuffix(strings.TrimSuffix(yamlString(port), "\n"), ".0")
			}
		}
		for _, r := range doc.Spec.Rules {
			s += " |"
			if len(r.Matches) > 0 {
				m, _ := yaml.Marshal(r.Matches)
				s += " " + strings.Join(strings.Fields(string(m)), " ") + " ->"
			}
			for _, b := range r.BackendRefs {
				s += " " + b.Name + ":" + yamlString(b.Port) + "=" + yamlString(b.Weight)
			}
		}
		out = append(out, s)
	}
	return out
}

func yamlString(v any) string {
	b, _ := yaml.Marshal(v)
	return strings.TrimSpace(string(b))
}

func TestConvertAll(t *testing.T) {
	w := world(t)
	tests := []struct {
		name, stream string
		want         []string
	}{
		{"http matches; the rest goes to the root", `apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: ab}
spec:
  service: web
  matches: [{kind: HTTPRouteGroup, name: firefox}]
  backends: [{service: web, weight: 0}, {service: web, weight: 100}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: firefox}
spec:
  matches:
  - {name: ff, pathRegex: '/api/.*', methods: [GET, POST], headers: {user-agent: '.*Firefox.*'}}
  - {name: any, methods: ['*']}`, []string{
			"HTTPRoute ab parent web" +
				" | - headers: - name: user-agent type: RegularExpression value: .*Firefox.* method: GET path: type: RegularExpression value: /api/.*" +
				" - headers: - name: user-agent type: RegularExpression value: .*Firefox.* method: POST path: type: RegularExpression value: /api/.*" +
				" - path: type: PathPrefix value: / -> web:8080=0 web:8080=100 | - path: type: PathPrefix value: / -> web:8080=1",
		}},
		{"tcp root gives a TCPRoute", `apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: db-move}
spec:
  service: db
  backends: [{service: db, weight: 1}]`, []string{"TCPRoute db-move parent db | db:5432=1"}},
		{"several ports, one route each", `apiVersion: split.smi-spec.io/v1alpha3
kind: TrafficSplit
metadata: {name: m}
spec:
  service: multi
  backends: [{service: multi, weight: 5}]`, []string{
			"HTTPRoute m-http parent multi:80 | - path: type: PathPrefix value: / -> multi:80=5",
			"HTTPRoute m-metrics parent multi:9090 | - path: type: PathPrefix value: / -> multi:9090=5",
			"TCPRoute m-raw parent multi:7000 | multi:7000=5",
		}},
		{"tcp match restricts the ports", `apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: m}
spec:
  service: multi
  matches: [{kind: TCPRoute, name: raw, apiGroup: specs.smi-spec.io}]
  backends: [{service: multi, weight: 5}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: raw}
spec: {matches: {ports: [7000]}}`, []string{"TCPRoute m-raw parent multi:7000 | multi:7000=5"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := smi.ConvertAll(decodeAll(t, tc.stream), w)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, summary(t, objs, w)); diff != "" {
				t.Fatalf("converted (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConvertErrors(t *testing.T) {
	w := world(t)
	tests := []struct {
		name, stream, want string
	}{
		{"root missing", "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: s}\nspec: {service: nope, backends: [{service: a, weight: 1}]}",
			"TrafficSplit default/s: spec.service: Service default/nope not found: the route needs its ports and protocols, so apply the Service first or in the same batch"},
		{"no backends", "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: s}\nspec: {service: web, backends: []}",
			"TrafficSplit default/s: spec.backends: Required value"},
		{"weight", "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: s}\nspec: {service: web, backends: [{service: a, weight: -1}]}",
			"TrafficSplit default/s: spec.backends[0].weight: Invalid value: -1: must be between 0 and 1000000, inclusive"},
		{"route group not in the batch", "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: s}\nspec: {service: web, backends: [{service: a, weight: 1}], matches: [{kind: HTTPRouteGroup, name: g}]}",
			"TrafficSplit default/s: spec.matches[0]: HTTPRouteGroup default/g not found: Trellis does not store HTTPRouteGroups, apply it in the same batch as the TrafficSplit"},
		{"match kind", "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: s}\nspec: {service: web, backends: [{service: a, weight: 1}], matches: [{kind: UDPRoute, name: g}]}",
			`TrafficSplit default/s: spec.matches[0].kind: Unsupported value: "UDPRoute": supported values: "HTTPRouteGroup", "TCPRoute"`},
		{"http matches leave a tcp root alone", "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: s}\nspec: {service: db, backends: [{service: a, weight: 1}], matches: [{kind: HTTPRouteGroup, name: g}]}\n---\napiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: g}\nspec: {matches: [{name: a, pathRegex: /}]}",
			"TrafficSplit default/s: spec.matches: no port of Service default/db is matched"},
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
	for _, doc := range decodeAll(t, "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: g}\nspec: {}\n---\napiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\nmetadata: {name: t}\n") {
		if objs, err := smi.Convert(doc, w); err != nil || len(objs) != 0 {
			t.Fatalf("Convert(%T) = %v, %v; want nothing", doc, objs, err)
		}
	}
	if _, err := smi.Convert("x", w); err == nil || err.Error() != "convert: string is not an SMI document" {
		t.Fatalf("Convert(string) = %v", err)
	}
}
