package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
	"github.com/trellis-mesh/trellis/internal/control/manager"
	"github.com/trellis-mesh/trellis/internal/control/server"
	"github.com/trellis-mesh/trellis/internal/store/bolt"
)

const token = "s3cret"

// start serves the API over a fresh bbolt store on 127.0.0.1:0.
func start(t *testing.T) string {
	t.Helper()
	s, err := bolt.Open(filepath.Join(t.TempDir(), "trellis.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.New(server.Options{Manager: manager.New(s), Token: token}))
	t.Cleanup(func() { srv.Close(); s.Close() })
	return srv.URL
}

// call makes one request and returns the status and body.
func call(t *testing.T, method, url, tok string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasSuffix(url, "/healthz") && ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, url, ct)
	}
	return resp.StatusCode, data
}

func decode[T any](t *testing.T, data []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%v in %s", err, data)
	}
	return v
}

const docs = `apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata: {name: default}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: api}
spec:
  selector: {app: api}
  ports: [{port: 80, protocol: http}]
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: db, namespace: data}
spec:
  selector: {app: db}
  ports: [{port: 5432, protocol: tcp}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api-canary}
spec:
  parentRefs: [{group: "", kind: Service, name: api}]
  rules:
  - backendRefs: [{name: api, port: 80}]
`

func TestAuth(t *testing.T) {
	url := start(t)
	for _, tc := range []struct {
		name, method, path, token string
		want                      int
	}{
		{"no token", "GET", "/api/v1/services", "", http.StatusUnauthorized},
		{"wrong token", "GET", "/api/v1/services", "nope", http.StatusUnauthorized},
		{"token prefix", "GET", "/api/v1/services", token[:3], http.StatusUnauthorized},
		{"apply without token", "POST", "/api/v1/apply", "", http.StatusUnauthorized},
		{"delete without token", "DELETE", "/api/v1/services/api", "", http.StatusUnauthorized},
		{"describe without token", "GET", "/api/v1/services/api/describe", "", http.StatusUnauthorized},
		{"right token", "GET", "/api/v1/services", token, http.StatusOK},
		{"healthz needs none", "GET", "/healthz", "", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(t, tc.method, url+tc.path, tc.token, strings.NewReader(docs))
			if code != tc.want {
				t.Fatalf("status %d, want %d: %s", code, tc.want, body)
			}
			if code == http.StatusUnauthorized {
				if e := decode[server.ErrorResponse](t, body); !strings.Contains(e.Error, "token") {
					t.Errorf("error %q does not say what is missing", e.Error)
				}
			}
		})
	}
}

func TestEndpoints(t *testing.T) {
	url := start(t)
	api := url + "/api/v1"

	code, body := call(t, "POST", api+"/apply", token, strings.NewReader(docs))
	if code != http.StatusOK {
		t.Fatalf("apply: %d %s", code, body)
	}
	applied := decode[server.ApplyResponse](t, body)
	want := []manager.Result{
		{Kind: "Mesh", Name: "default", Action: manager.Created},
		{Kind: "Service", Namespace: "default", Name: "api", Action: manager.Created},
		{Kind: "Service", Namespace: "data", Name: "db", Action: manager.Created},
		{Kind: "HTTPRoute", Namespace: "default", Name: "api-canary", Action: manager.Created},
	}
	if diff := cmp.Diff(want, applied.Results); diff != "" {
		t.Fatalf("apply results (-want +got):\n%s", diff)
	}
	code, body = call(t, "POST", api+"/apply", token, strings.NewReader(docs))
	for _, r := range decode[server.ApplyResponse](t, body).Results {
		if code != 200 || r.Action != manager.Unchanged {
			t.Errorf("second apply: %d %+v", code, r)
		}
	}

	names := func(path string) []string {
		t.Helper()
		code, body := call(t, "GET", api+path, token, nil)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		var out []string
		for _, raw := range decode[server.ListResponse](t, body).Items {
			obj, err := v1alpha1.Decode(raw)
			if err != nil {
				t.Fatalf("GET %s: item %s: %v", path, raw, err)
			}
			out = append(out, v1alpha1.NamespaceOf(obj)+"/"+obj.GetName())
		}
		return out
	}
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"/services", []string{"data/db", "default/api"}},
		{"/svc", []string{"data/db", "default/api"}},
		{"/Service", []string{"data/db", "default/api"}},
		{"/services?namespace=data", []string{"data/db"}},
		{"/services?namespace=nowhere", nil},
		{"/httproutes", []string{"default/api-canary"}},
		{"/meshes?namespace=data", []string{"default/default"}},
	} {
		if diff := cmp.Diff(tc.want, names(tc.path)); diff != "" {
			t.Errorf("GET %s (-want +got):\n%s", tc.path, diff)
		}
	}

	// One object, with computed status.
	code, body = call(t, "GET", api+"/httproute/api-canary", token, nil)
	if code != http.StatusOK {
		t.Fatalf("get: %d %s", code, body)
	}
	obj, err := v1alpha1.Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	if obj.GetResourceVersion() == "" || obj.GetUID() == "" {
		t.Errorf("get: resourceVersion %q uid %q, want both", obj.GetResourceVersion(), obj.GetUID())
	}
	if !bytes.Contains(body, []byte(`"type":"ResolvedRefs"`)) {
		t.Errorf("get: no computed status in %s", body)
	}
	code, body = call(t, "GET", api+"/services/db?namespace=data", token, nil)
	if code != http.StatusOK {
		t.Errorf("get in a namespace: %d %s", code, body)
	}

	// Describe: the object, its references, the proxies (none without a
	// describer).
	code, body = call(t, "GET", api+"/httproutes/api-canary/describe", token, nil)
	if code != http.StatusOK {
		t.Fatalf("describe: %d %s", code, body)
	}
	var shape map[string]json.RawMessage
	if err := json.Unmarshal(body, &shape); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"object", "proxies", "refs"}, slices.Sorted(maps.Keys(shape))); diff != "" {
		t.Errorf("describe keys (-want +got):\n%s", diff)
	}
	d := decode[server.Describe](t, body)
	if string(shape["proxies"]) != "[]" {
		t.Errorf("describe proxies %s, want []", shape["proxies"])
	}
	var refs []string
	for _, r := range d.Refs {
		refs = append(refs, r.String())
	}
	if len(refs) == 0 || !strings.Contains(strings.Join(refs, " "), "api") {
		t.Errorf("describe refs %v, want the parent and backend api", refs)
	}
	if o, err := v1alpha1.Decode(d.Object); err != nil || o.GetName() != "api-canary" {
		t.Errorf("describe object: %v %v", o, err)
	}

	// Delete returns the object as it was; then it is gone.
	code, body = call(t, "DELETE", api+"/services/db?namespace=data", token, nil)
	if code != http.StatusOK {
		t.Fatalf("delete: %d %s", code, body)
	}
	if o, err := v1alpha1.Decode(body); err != nil || o.GetName() != "db" {
		t.Errorf("delete answer: %v %v", o, err)
	}
	code, body = call(t, "GET", api+"/services/db?namespace=data", token, nil)
	if code != http.StatusNotFound {
		t.Errorf("get after delete: %d %s", code, body)
	}
}

func TestErrors(t *testing.T) {
	url := start(t)
	api := url + "/api/v1"

	t.Run("unknown kind", func(t *testing.T) {
		for _, p := range []string{"/gizmos", "/gizmos/x", "/gizmos/x/describe"} {
			code, body := call(t, "GET", api+p, token, nil)
			e := decode[server.ErrorResponse](t, body)
			if code != http.StatusNotFound || !strings.Contains(e.Error, `unknown kind "gizmos"`) {
				t.Errorf("GET %s: %d %s", p, code, body)
			}
			for _, k := range v1alpha1.Kinds() {
				if !strings.Contains(e.Error, k.Kind) {
					t.Errorf("GET %s: %q does not list kind %s", p, e.Error, k.Kind)
				}
			}
		}
		code, _ := call(t, "DELETE", api+"/gizmos/x", token, nil)
		if code != http.StatusNotFound {
			t.Errorf("DELETE unknown kind: %d", code)
		}
	})
	t.Run("unknown object", func(t *testing.T) {
		for _, tc := range []struct{ method, path string }{
			{"GET", "/services/nope"},
			{"GET", "/services/nope/describe"},
			{"DELETE", "/services/nope"},
		} {
			code, body := call(t, tc.method, api+tc.path, token, nil)
			e := decode[server.ErrorResponse](t, body)
			if code != http.StatusNotFound || !strings.Contains(e.Error, "nope") {
				t.Errorf("%s %s: %d %s", tc.method, tc.path, code, body)
			}
		}
	})
	t.Run("bad namespace", func(t *testing.T) {
		for _, tc := range []struct{ method, path string }{
			{"GET", "/services/api?namespace=a%2Fb"},
			{"GET", "/services/api/describe?namespace=a%2Fb"},
			{"DELETE", "/services/api?namespace=a%2Fb"},
		} {
			code, body := call(t, tc.method, api+tc.path, token, nil)
			if code != http.StatusBadRequest || !strings.Contains(string(body), "namespace") {
				t.Errorf("%s %s: %d %s, want 400 naming the namespace", tc.method, tc.path, code, body)
			}
		}
	})
	t.Run("refused apply", func(t *testing.T) {
		code, body := call(t, "POST", api+"/apply", token, strings.NewReader(docs+`---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: bad}
spec:
  selector: {app: bad}
  ports: [{port: 0}]
`))
		if code != http.StatusUnprocessableEntity {
			t.Fatalf("status %d, want 422: %s", code, body)
		}
		e := decode[server.ErrorResponse](t, body)
		if e.Error != "refused, nothing changed" || len(e.Details) != 1 {
			t.Fatalf("answer %+v", e)
		}
		d := e.Details[0]
		if d.Document != 5 || d.Kind != "Service" || d.Name != "bad" || len(d.Errors) == 0 || !strings.Contains(d.Errors[0], "spec.ports[0].port") {
			t.Errorf("details %+v", d)
		}
		if got := count(t, api+"/services"); got != 0 {
			t.Errorf("a refused apply stored %d services", got)
		}
	})
	t.Run("body too large", func(t *testing.T) {
		big := strings.Repeat("# padding to go over the limit\n", (16<<20)/30+10)
		code, body := call(t, "POST", api+"/apply", token, strings.NewReader(big))
		if code != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d, want 413: %.200s", code, body)
		}
	})
	t.Run("malformed yaml", func(t *testing.T) {
		code, body := call(t, "POST", api+"/apply", token, strings.NewReader("kind: [\n"))
		if code != http.StatusUnprocessableEntity && code != http.StatusBadRequest {
			t.Fatalf("status %d, want 400 or 422: %s", code, body)
		}
	})
	t.Run("empty apply", func(t *testing.T) {
		code, body := call(t, "POST", api+"/apply", token, strings.NewReader(""))
		if code != http.StatusBadRequest {
			t.Fatalf("status %d, want 400: %s", code, body)
		}
	})
}

// count counts the items of a list.
func count(t *testing.T, url string) int {
	t.Helper()
	code, body := call(t, "GET", url, token, nil)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	return len(decode[server.ListResponse](t, body).Items)
}
