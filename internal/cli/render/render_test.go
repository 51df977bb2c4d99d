package render_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
	"github.com/trellis-mesh/trellis/internal/cli/render"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

var now = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// objects decodes docs and gives each a creation time ages ago.
func objects(t *testing.T, docs string, ages ...time.Duration) []v1alpha1.Object {
	t.Helper()
	objs, err := v1alpha1.DecodeAll(strings.NewReader(docs))
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range objs {
		v1alpha1.Default(o)
		if i < len(ages) {
			o.SetCreationTimestamp(metav1.NewTime(now.Add(-ages[i])))
		}
	}
	return objs
}

const mixed = `apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: api}
spec:
  selector: {app: api, version: v1}
  ports: [{name: http, port: 80, protocol: http}, {name: grpc, port: 9090, protocol: grpc}]
status:
  conditions: [{type: Accepted, status: "False", reason: Invalid, message: "x", lastTransitionTime: "2026-01-01T00:00:00Z"}]
---
apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: web-1, namespace: shop, labels: {app: web}}
spec:
  address: 10.0.0.1
  inbound: [{port: 10001, servicePort: 80, appPort: 8001}]
  outbound: [{service: api, localPort: 15001}]
  outboundHTTPPort: 15000
status:
  connected: true
  conditions: [{type: Ready, status: "True", reason: Connected, message: "", lastTransitionTime: "2026-01-01T00:00:00Z"}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: canary}
spec:
  parentRefs: [{group: "", kind: Service, name: api, port: 80}]
  rules:
  - backendRefs: [{name: api-v1, port: 80, weight: 90}, {name: api-v2, port: 80, weight: 10}]
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata: {name: default}
---
apiVersion: trellis.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: api-lb}
spec:
  targetRefs: [{group: "", kind: Service, name: api}, {group: gateway.networking.k8s.io, kind: HTTPRoute, name: canary}]
  loadBalancer: {type: LeastRequest}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: echo, labels: {trellis.dev/mesh: other}}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - backendRefs: [{name: echo-v1, port: 9000}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: db}
spec:
  parentRefs: [{group: "", kind: Service, name: db, port: 5432}]
  rules:
  - backendRefs: [{name: db-primary, port: 5432, weight: 1}]
`

func TestTable(t *testing.T) {
	objs := objects(t, mixed, 45*time.Second, 3*time.Minute, 5*time.Hour, 12*24*time.Hour)
	var b bytes.Buffer
	if err := render.Table(&b, objs, now); err != nil {
		t.Fatal(err)
	}
	golden(t, "table-mixed", b.String())
}

func TestAge(t *testing.T) {
	for _, tc := range []struct {
		age  time.Duration
		want string
	}{
		{-time.Second, "0s"}, // clock skew
		{0, "0s"},
		{119 * time.Second, "119s"},
		{2 * time.Minute, "2m"},
		{119 * time.Minute, "119m"},
		{2 * time.Hour, "2h"},
		{47 * time.Hour, "47h"},
		{48 * time.Hour, "2d"},
		{400 * 24 * time.Hour, "400d"},
	} {
		objs := objects(t, "apiVersion: trellis.dev/v1alpha1\nkind: Mesh\nmetadata: {name: m}\n", tc.age)
		var b bytes.Buffer
		render.Table(&b, objs, now)
		lines := strings.Split(strings.TrimSpace(b.String()), "\n")
		fields := strings.Fields(lines[len(lines)-1])
		if got := fields[len(fields)-1]; got != tc.want {
			t.Errorf("age %s: %q, want %q", tc.age, got, tc.want)
		}
	}
	// Never created (a document not from the control plane): "-".
	objs := objects(t, "apiVersion: trellis.dev/v1alpha1\nkind: Mesh\nmetadata: {name: m}\n")
	var b bytes.Buffer
	render.Table(&b, objs, now)
	if !strings.HasSuffix(strings.TrimSpace(b.String()), "-") {
		t.Errorf("no creationTimestamp: %q, want AGE -", b.String())
	}
}

func TestDescribe(t *testing.T) {
	objs := objects(t, mixed, time.Minute)
	refs := v1alpha1.Refs(objs[1])
	var b bytes.Buffer
	if err := render.Describe(&b, objs[1], refs, []string{"shop/web-1"}); err != nil {
		t.Fatal(err)
	}
	golden(t, "describe-dataplane", b.String())
	b.Reset()
	if err := render.Describe(&b, objs[4], nil, nil); err != nil {
		t.Fatal(err)
	}
	golden(t, "describe-none", b.String())
}
