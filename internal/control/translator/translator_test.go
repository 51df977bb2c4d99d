package translator

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/tools/txtar"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

const dependsFixture = `
apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata: {name: default}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: backend}
spec:
  selector: {app: backend}
  ports: [{port: 80}]
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: unrelated}
spec:
  selector: {app: unrelated}
  ports: [{port: 80}]
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: backend, labels: {trellis.dev/mesh: other}}
spec:
  selector: {app: backend}
  ports: [{port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: backend}
spec:
  parentRefs: [{kind: Service, name: backend}]
  rules:
  - backendRefs: [{name: backend-v2, port: 80}]
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: client}
spec:
  selector: {app: client}
  ports: [{port: 8080}]
---
apiVersion: trellis.dev/v1alpha1
kind: AccessPolicy
metadata: {name: client-callers}
spec:
  targetRefs: [{group: "", kind: Service, name: client}]
  action: ALLOW
  rules: [{from: [{service: reporting, mesh: analytics}]}]
---
apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: client, labels: {app: client}}
spec:
  address: 10.0.0.1
  inbound: [{port: 8080, appPort: 18080}]
  outbound: [{service: backend, localPort: 10080}, {service: absent, localPort: 10081}]
`

func object(t *testing.T, doc string) v1alpha1.Object {
	t.Helper()
	objs := decodeObjects(t, []byte(doc))
	if len(objs) != 1 {
		t.Fatalf("want one object, got %d", len(objs))
	}
	return objs[0]
}

func TestDependsOn(t *testing.T) {
	objs := decodeObjects(t, []byte(dependsFixture))
	client := objs[len(objs)-1].(*v1alpha1.Dataplane)
	res, err := Translate(NewIndex(objs), Proxy{Mesh: "default", Dataplane: client})
	if err != nil {
		t.Fatal(err)
	}
	svc := "apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: %s, labels: {trellis.dev/mesh: %s}}\nspec: {selector: {%s}, ports: [{port: 80, protocol: %s}]}"
	dp := "apiVersion: trellis.dev/v1alpha1\nkind: Dataplane\nmetadata: {name: %s, labels: {%s, trellis.dev/mesh: %s}}\nspec: {address: 10.0.0.9}"
	route := "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: %s}\nspec: {parentRefs: [{kind: Service, name: %s}]}"
	policy := "apiVersion: trellis.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: p}\nspec: {targetRefs: [{group: %q, kind: %s, name: %s}]}"
	access := "apiVersion: trellis.dev/v1alpha1\nkind: AccessPolicy\nmetadata: {name: a, labels: {trellis.dev/mesh: %s}}\nspec: {targetRefs: [{group: '', kind: Service, name: %s}], action: DENY, rules: [{from: [{any: true}]}]}"
	identity := "apiVersion: trellis.dev/v1alpha1\nkind: Dataplane\nmetadata: {name: %s, labels: {app: %s}}\nspec: {address: 10.0.0.9, identity: %s}"
	for _, tc := range []struct {
		name string
		obj  v1alpha1.Object
		want bool
	}{
		{"own mesh", &v1alpha1.Mesh{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, true},
		{"other mesh", &v1alpha1.Mesh{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, false},
		{"outbound service", object(t, fmt.Sprintf(svc, "backend", "default", "app: backend", "http")), true},
		{"route backend", object(t, fmt.Sprintf(svc, "backend-v2", "default", "app: backend", "http")), true},
		{"missing outbound service created", object(t, fmt.Sprintf(svc, "absent", "default", "app: x", "http")), true},
		{"unrelated service", object(t, fmt.Sprintf(svc, "unrelated", "default", "app: unrelated", "http")), false},
		{"same name in other mesh", object(t, fmt.Sprintf(svc, "backend", "other", "app: backend", "http")), false},
		{"service selecting the proxy", object(t, fmt.Sprintf(svc, "client-svc", "default", "app: client", "tcp")), true},
		{"own dataplane", client, true},
		{"endpoint of a service read", object(t, fmt.Sprintf(dp, "backend-9", "app: backend", "default")), true},
		{"endpoint of a route backend", object(t, fmt.Sprintf(dp, "backend-v2-1", "app: backend", "default")), true},
		{"unrelated dataplane", object(t, fmt.Sprintf(dp, "u-1", "app: unrelated", "default")), false},
		{"dataplane of other mesh", object(t, fmt.Sprintf(dp, "backend-9", "app: backend", "other")), false},
		{"route on a service read", object(t, fmt.Sprintf(route, "new", "backend")), true},
		{"route read, parent moved away", object(t, fmt.Sprintf(route, "backend", "unrelated")), true},
		{"route on unrelated service", object(t, fmt.Sprintf(route, "new", "unrelated")), false},
		{"policy on a service read", object(t, fmt.Sprintf(policy, "", "Service", "backend")), true},
		{"policy on a service that does not exist yet", object(t, fmt.Sprintf(policy, "", "Service", "client-svc")), false},
		{"policy on unrelated service", object(t, fmt.Sprintf(policy, "", "Service", "unrelated")), false},
		{"policy on a route read", object(t, fmt.Sprintf(policy, gwv1.GroupName, "HTTPRoute", "backend")), true},
		{"policy on another route", object(t, fmt.Sprintf(policy, gwv1.GroupName, "HTTPRoute", "x")), false},
		{"access policy on an inbound's service", object(t, fmt.Sprintf(access, "default", "client")), true},
		{"access policy on an outbound service", object(t, fmt.Sprintf(access, "default", "backend")), false},
		{"access policy of another mesh", object(t, fmt.Sprintf(access, "other", "client")), false},
		{"mesh of a policy's source", &v1alpha1.Mesh{ObjectMeta: metav1.ObjectMeta{Name: "analytics"}}, true},
		{"identity of a backend instance", object(t, fmt.Sprintf(identity, "backend-7", "backend", "backend-canary")), true},
		{"identity of an unrelated instance", object(t, fmt.Sprintf(identity, "u-7", "unrelated", "x")), false},
		{"unknown kind", &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "gw"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := res.DependsOn(tc.obj); got != tc.want {
				t.Errorf("DependsOn = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestDependsOnIsConservative checks, for every golden case and every
// object in it, that DependsOn says true whenever deleting the object
// changes the proxy's output.
func TestDependsOnIsConservative(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txtar")
	for _, file := range files {
		ar, err := txtar.ParseFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var resources, proxyYAML []byte
		for _, f := range ar.Files {
			switch f.Name {
			case "resources.yaml":
				resources = f.Data
			case "proxy.yaml":
				proxyYAML = f.Data
			}
		}
		objs := decodeObjects(t, resources)
		p := proxyFor(t, proxyYAML, objs)
		full, err := Translate(NewIndex(objs), p)
		if err != nil {
			continue // error cases
		}
		want := render(t, full)
		for i, o := range objs {
			if o == p.Dataplane {
				continue
			}
			rest := slices.Delete(slices.Clone(objs), i, i+1)
			got, err := Translate(NewIndex(rest), p)
			if err != nil {
				t.Fatalf("%s without %s: %v", file, describe(o), err)
			}
			if !bytes.Equal(render(t, got), want) && !full.DependsOn(o) {
				t.Errorf("%s: deleting %s changes the output but DependsOn says false", file, describe(o))
			}
		}
	}
}

func describe(o v1alpha1.Object) string {
	return fmt.Sprintf("%T %s/%s", o, o.GetNamespace(), o.GetName())
}

func TestMeshIsolation(t *testing.T) {
	ar, err := txtar.ParseFile("testdata/mesh-isolation.txtar")
	if err != nil {
		t.Fatal(err)
	}
	objs := decodeObjects(t, ar.Files[1].Data)
	res, err := Translate(NewIndex(objs), proxyFor(t, ar.Files[0].Data, objs))
	if err != nil {
		t.Fatal(err)
	}
	out := string(render(t, res))
	for _, leak := range []string{"10.9.9.9", "secret", "red.log", "RANDOM"} {
		if strings.Contains(out, leak) {
			t.Errorf("mesh blue's proxy sees %q of mesh red", leak)
		}
	}
}

func TestProxyErrors(t *testing.T) {
	dp := &v1alpha1.Dataplane{ObjectMeta: metav1.ObjectMeta{Name: "x", Labels: map[string]string{v1alpha1.MeshLabel: "red"}}}
	for _, tc := range []struct {
		name string
		p    Proxy
		want string
	}{
		{"neither", Proxy{Mesh: "default"}, "neither a Dataplane nor proxyless"},
		{"wrong mesh", Proxy{Mesh: "blue", Dataplane: dp}, `belongs to mesh "red", not "blue"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Translate(NewIndex(nil), tc.p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestEmptyMeshProxylessHasNothing(t *testing.T) {
	res, err := Translate(NewIndex(nil), Proxy{Mesh: "nowhere", Proxyless: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.Listeners) + len(res.Routes) + len(res.Clusters) + len(res.Endpoints); n != 0 {
		t.Errorf("got %d resources for an empty mesh", n)
	}
}

// TestConcurrentTranslate translates for many proxies of one Index at once
// (the xDS server does) and expects what one at a time gives.
func TestConcurrentTranslate(t *testing.T) {
	objs := bigMesh(30, 2)
	var proxies []Proxy
	for _, o := range objs {
		if dp, ok := o.(*v1alpha1.Dataplane); ok {
			proxies = append(proxies, Proxy{Mesh: "default", Dataplane: dp})
		}
	}
	proxies = append(proxies, Proxy{Mesh: "default", Proxyless: true})
	want := make([][]byte, len(proxies))
	sequential := NewIndex(objs)
	for i, p := range proxies {
		res, err := Translate(sequential, p)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = render(t, res)
	}
	idx := NewIndex(objs)
	got := make([][]byte, len(proxies))
	var wg sync.WaitGroup
	for i, p := range proxies {
		wg.Go(func() {
			res, err := Translate(idx, p)
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = render(t, res)
		})
	}
	wg.Wait()
	for i := range proxies {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("proxy %d: concurrent translation differs", i)
		}
	}
}
