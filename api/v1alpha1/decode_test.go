package v1alpha1_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	api "github.com/trellis-mesh/trellis/api/v1alpha1"
)

const serviceYAML = `apiVersion: trellis.dev/v1alpha1
kind: Service
metadata:
  name: api
spec:
  selector: {app: api}
  ports:
  - port: 8080
`

func TestDecodeStrict(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want string // error; "" for success
	}{
		{"service", serviceYAML, ""},
		{"json", `{"apiVersion":"trellis.dev/v1alpha1","kind":"Mesh","metadata":{"name":"m"}}`, ""},
		{"unknown field with path", strings.Replace(serviceYAML, "  - port: 8080", "  - port: 8080\n    prot: http", 1),
			"spec.ports[0].prot: unknown field"},
		{"two unknown fields", strings.Replace(serviceYAML, "spec:", "spek: 1\nspec:\n  extra: true", 1),
			"spec.extra: unknown field; spek: unknown field"},
		{"field names are case-sensitive", strings.Replace(serviceYAML, "selector", "Selector", 1),
			"spec.Selector: unknown field"},
		{"duplicate key", strings.Replace(serviceYAML, "spec:", "metadata: {name: b}\nspec:", 1),
			`yaml: line 5: key "metadata" already set in map`},
		{"wrong type", strings.Replace(serviceYAML, "port: 8080", `port: "http"`, 1),
			"spec.ports.port: cannot decode a string into int32"},
		{"bad duration names its field", `{"apiVersion":"trellis.dev/v1alpha1","kind":"Mesh","metadata":{"name":"m"},"spec":{"defaults":{"timeouts":{"request":"5x"}}}}`,
			`spec.defaults.timeouts.request: time: unknown unit "x" in duration "5x"`},
		{"unquoted on key", "apiVersion: trellis.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: p}\nspec:\n  retry:\n    on: [5xx]\n",
			`spec.retry.true: unknown field (YAML reads an unquoted key on, off, yes or no as a boolean: quote it, as in "on":)`},
		{"access policy", accessYAML, ""},
		{"access policy unknown field", strings.Replace(accessYAML, "anyAuthenticated: true", "anyAuthenticated: true\n      namespace: shop", 1),
			"spec.rules[1].from[0].namespace: unknown field"},
		{"access policy header typo", strings.Replace(accessYAML, "invert: true", "inverted: true", 1),
			"spec.rules[0].to[0].headers[1].inverted: unknown field"},
		{"mesh mtls typo", "apiVersion: trellis.dev/v1alpha1\nkind: Mesh\nmetadata: {name: m}\nspec: {mtls: {mode: STRICT, ttl: 1h}}\n",
			"spec.mtls.ttl: unknown field"},
		{"mesh certificate ttl", "apiVersion: trellis.dev/v1alpha1\nkind: Mesh\nmetadata: {name: m}\nspec: {mtls: {certificateTTL: 1d}}\n",
			`spec.mtls.certificateTTL: time: unknown unit "d" in duration "1d"`},
		{"missing apiVersion", "kind: Service\nmetadata: {name: a}\n", "apiVersion: Required value"},
		{"missing kind", "apiVersion: trellis.dev/v1alpha1\nmetadata: {name: a}\n", "kind: Required value"},
		{"unknown kind", "apiVersion: trellis.dev/v1alpha1\nkind: Servic\n",
			`kind: Unsupported value: "Servic": supported values for trellis.dev/v1alpha1: "Mesh", "Service", "Dataplane", "TrafficPolicy", "AccessPolicy", "Broker", "Subscription"`},
		{"route kind under trellis group", "apiVersion: trellis.dev/v1alpha1\nkind: HTTPRoute\n",
			`kind: Unsupported value: "HTTPRoute": supported values for trellis.dev/v1alpha1: "Mesh", "Service", "Dataplane", "TrafficPolicy", "AccessPolicy", "Broker", "Subscription"`},
		{"unknown apiVersion", "apiVersion: v1\nkind: Service\n",
			`apiVersion: Unsupported value: "v1": supported values: "trellis.dev/v1alpha1", "gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1alpha2"`},
		{"v1alpha2 HTTPRoute is not accepted", "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: HTTPRoute\n",
			`kind: Unsupported value: "HTTPRoute": supported values for gateway.networking.k8s.io/v1alpha2: "GRPCRoute", "TCPRoute"`},
		{"empty", "# nothing\n", "empty document"},
		{"broken json", `{"apiVersion": "trellis.dev/v1alpha1",`, "json syntax error at offset 38: unexpected end of JSON input"},
		{"apiVersion not a string", `{"apiVersion": 1}`, "apiVersion: cannot decode a number into string"},
		{"not an object", "- a\n- b\n", "a document must be an object with apiVersion and kind"},
		{"gateway route unknown field", "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  rules:\n  - backendRefs:\n    - name: a\n      wieght: 1\n",
			"spec.rules[0].backendRefs[0].wieght: unknown field"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obj, err := api.Decode([]byte(tc.doc))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Fatalf("Decode error:\n got %s\nwant %s", got, tc.want)
			}
			if err == nil && obj == nil {
				t.Fatal("Decode returned neither object nor error")
			}
		})
	}
}

func TestDecodeTypes(t *testing.T) {
	tests := []struct {
		doc  string
		kind string
	}{
		{"apiVersion: trellis.dev/v1alpha1\nkind: Mesh\nmetadata: {name: m}\n", api.KindMesh},
		{serviceYAML, api.KindService},
		{"apiVersion: trellis.dev/v1alpha1\nkind: Dataplane\nmetadata: {name: d}\n", api.KindDataplane},
		{"apiVersion: trellis.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: p}\n", api.KindTrafficPolicy},
		{accessYAML, api.KindAccessPolicy},
		{"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n", api.KindHTTPRoute},
		{"apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: r}\n", api.KindGRPCRoute},
		{"apiVersion: gateway.networking.k8s.io/v1\nkind: TCPRoute\nmetadata: {name: r}\n", api.KindTCPRoute},
		{"apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata: {name: r}\nspec:\n  rules:\n  - backendRefs: [{name: db, port: 5432}]\n", api.KindTCPRoute},
		{"apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: GRPCRoute\nmetadata: {name: r}\n", api.KindGRPCRoute},
	}
	for _, tc := range tests {
		t.Run(tc.kind, func(t *testing.T) {
			obj, err := api.Decode([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			if got := api.KindOf(obj); got != tc.kind {
				t.Fatalf("KindOf = %q, want %q", got, tc.kind)
			}
			gvk := obj.GetObjectKind().GroupVersionKind()
			info, _ := api.LookupKind(tc.kind)
			if gvk.Kind != tc.kind || gvk.GroupVersion().String() != info.APIVersion {
				t.Fatalf("TypeMeta = %v, want %s %s (v1alpha2 converts to v1)", gvk, info.APIVersion, tc.kind)
			}
		})
	}
}

func TestDecodeV1alpha2TCPRouteKeepsSpec(t *testing.T) {
	obj, err := api.Decode([]byte("apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [{kind: Service, group: '', name: db}]\n  rules:\n  - backendRefs: [{name: db-v2, port: 5432, weight: 3}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := obj.(*gwv1.TCPRoute)
	if r.Spec.ParentRefs[0].Name != "db" || r.Spec.Rules[0].BackendRefs[0].Name != "db-v2" || *r.Spec.Rules[0].BackendRefs[0].Weight != 3 {
		t.Fatalf("spec lost in conversion: %+v", r.Spec)
	}
}

func TestDecodeAll(t *testing.T) {
	stream := `---
# a comment-only document is skipped and not counted
---
apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata: {name: demo}
---
---
` + serviceYAML + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews}
spec:
  rulez: []
`
	_, err := api.DecodeAll(strings.NewReader(stream))
	want := "document 3 (HTTPRoute default/reviews): spec.rulez: unknown field"
	if err == nil || err.Error() != want {
		t.Fatalf("DecodeAll error = %v, want %s", err, want)
	}

	good := strings.TrimSuffix(stream, "spec:\n  rulez: []\n")
	objs, err := api.DecodeAll(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, api.KindOf(o))
	}
	if diff := cmp.Diff([]string{"Mesh", "Service", "HTTPRoute"}, kinds); diff != "" {
		t.Fatalf("kinds (-want +got):\n%s", diff)
	}
}

func TestDecodeAllNames(t *testing.T) {
	tests := []struct {
		name, stream, want string
	}{
		{"cluster-scoped", "apiVersion: trellis.dev/v1alpha1\nkind: Mesh\nmetadata: {name: m}\nspec: {x: 1}\n",
			"document 1 (Mesh m): spec.x: unknown field"},
		{"namespace given", "apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: s, namespace: shop}\nspec: {x: 1}\n",
			"document 1 (Service shop/s): spec.x: unknown field"},
		{"no name", "apiVersion: trellis.dev/v1alpha1\nkind: Service\nspec: {x: 1}\n",
			"document 1 (Service): spec.x: unknown field"},
		{"no kind", "apiVersion: trellis.dev/v1alpha1\n", "document 1: kind: Required value"},
		{"bad separator", serviceYAML + "--- x\n" + serviceYAML, "document 1: invalid Yaml document separator: x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := api.DecodeAll(strings.NewReader(tc.stream))
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error = %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	for _, k := range api.Kinds() {
		t.Run(k.Kind, func(t *testing.T) {
			obj := k.New()
			obj.SetName("x")
			obj.GetObjectKind().SetGroupVersionKind(obj.GetObjectKind().GroupVersionKind().GroupVersion().WithKind("")) // cleared
			data, err := api.Encode(obj)
			if err != nil {
				t.Fatal(err)
			}
			if obj.GetObjectKind().GroupVersionKind().Kind != "" {
				t.Fatal("Encode changed its argument")
			}
			back, err := api.Decode(data)
			if err != nil {
				t.Fatalf("Decode(Encode) = %v\n%s", err, data)
			}
			if api.KindOf(back) != k.Kind || back.GetName() != "x" {
				t.Fatalf("round trip gave %s %q", api.KindOf(back), back.GetName())
			}
		})
	}
}

func TestLookupKind(t *testing.T) {
	tests := map[string]string{
		"mesh": "Mesh", "Meshes": "Mesh", "service": "Service", "SERVICES": "Service", "svc": "Service",
		"dataplane": "Dataplane", "dataplanes": "Dataplane", "dp": "Dataplane",
		"trafficpolicy": "TrafficPolicy", "trafficpolicies": "TrafficPolicy", "tp": "TrafficPolicy",
		"httproute": "HTTPRoute", "httproutes": "HTTPRoute", "grpcroute": "GRPCRoute", "grpcroutes": "GRPCRoute",
		"tcproute": "TCPRoute", "tcproutes": "TCPRoute",
		"accesspolicy": "AccessPolicy", "AccessPolicies": "AccessPolicy", "ap": "AccessPolicy",
	}
	for name, want := range tests {
		k, ok := api.LookupKind(name)
		if !ok || k.Kind != want {
			t.Errorf("LookupKind(%q) = %q, %v; want %q", name, k.Kind, ok, want)
		}
		if k.Namespaced != (want != "Mesh") {
			t.Errorf("%s: Namespaced = %v", want, k.Namespaced)
		}
		if got := api.KindOf(k.New()); got != want {
			t.Errorf("KindOf(New()) for %s = %q", want, got)
		}
	}
	for _, name := range []string{"", "gateway", "route", "s"} {
		if k, ok := api.LookupKind(name); ok {
			t.Errorf("LookupKind(%q) found %s", name, k.Kind)
		}
	}
}
