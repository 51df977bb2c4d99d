package manager_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
	"github.com/trellis-mesh/trellis/internal/control/manager"
	"github.com/trellis-mesh/trellis/internal/store"
	"github.com/trellis-mesh/trellis/internal/store/bolt"
)

// newStore opens a bbolt store in a fresh directory, closed at cleanup.
func newStore(t *testing.T) store.Store {
	t.Helper()
	s, err := bolt.Open(filepath.Join(t.TempDir(), "trellis.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// examples returns the documents of examples/mesh and its subdirectories,
// every file in path order, joined into one stream as `trellis apply -f examples/mesh/` sends them.
func examples(t *testing.T) []byte {
	t.Helper()
	dir := filepath.Join("..", "..", "..", "examples", "mesh")
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Ext(path) == ".yaml" {
			files = append(files, path)
		}
		return err
	})
	if err != nil || len(files) == 0 {
		t.Fatalf("examples/mesh: %v (%d files)", err, len(files))
	}
	sort.Strings(files)
	var b bytes.Buffer
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if b.Len() > 0 {
			b.WriteString("\n---\n")
		}
		b.Write(data)
	}
	return b.Bytes()
}

func revision(t *testing.T, s store.Store) int64 {
	t.Helper()
	rev, err := s.Revision(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

func apply(t *testing.T, m *manager.Manager, doc string) []manager.Result {
	t.Helper()
	res, err := m.Apply(context.Background(), strings.NewReader(doc))
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return res
}

func actions(res []manager.Result) []string {
	var out []string
	for _, r := range res {
		out = append(out, r.Kind+" "+displayKey(r.Namespace, r.Name)+" "+string(r.Action))
	}
	return out
}

func displayKey(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

func get(t *testing.T, m *manager.Manager, kind, ns, name string) v1alpha1.Object {
	t.Helper()
	obj, err := m.Get(context.Background(), store.Key{Kind: kind, Namespace: ns, Name: name})
	if err != nil {
		t.Fatalf("get %s %s/%s: %v", kind, ns, name, err)
	}
	return obj
}

func TestApplyExamplesIdempotent(t *testing.T) {
	s := newStore(t)
	m := manager.New(s)
	ctx := context.Background()
	docs := examples(t)

	res, err := m.Apply(ctx, bytes.NewReader(docs))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"Dataplane default/api-1 created", "Dataplane default/api-2 created", "Dataplane default/web-1 created",
		"Mesh default created",
		"TrafficPolicy default/api created",
		"HTTPRoute default/api-canary created",
		"Service default/web created", "Service default/api created", "Service default/api-v1 created", "Service default/api-v2 created",
	}
	if diff := cmp.Diff(want, actions(res)); diff != "" {
		t.Fatalf("first apply (-want +got):\n%s", diff)
	}
	rev := revision(t, s)
	svc := get(t, m, "Service", "default", "api")

	// Again: nothing changes, and nothing is written.
	res, err = m.Apply(ctx, bytes.NewReader(docs))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Action != manager.Unchanged {
			t.Errorf("second apply: %s %s/%s %s, want unchanged", r.Kind, r.Namespace, r.Name, r.Action)
		}
	}
	if got := revision(t, s); got != rev {
		t.Fatalf("second apply moved the store revision from %d to %d", rev, got)
	}

	// A change: configured, generation+1, uid and creationTimestamp kept.
	res = apply(t, m, `apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: api}
spec:
  selector: {app: api}
  ports:
  - {name: http, port: 80, protocol: http}
  - {name: h2, port: 81, protocol: http2}
`)
	if diff := cmp.Diff([]string{"Service default/api configured"}, actions(res)); diff != "" {
		t.Fatalf("change (-want +got):\n%s", diff)
	}
	after := get(t, m, "Service", "default", "api")
	if after.GetGeneration() != svc.GetGeneration()+1 {
		t.Errorf("generation %d, want %d", after.GetGeneration(), svc.GetGeneration()+1)
	}
	if after.GetUID() != svc.GetUID() || after.GetUID() == "" {
		t.Errorf("uid %q, want %q kept", after.GetUID(), svc.GetUID())
	}
	if at, bt := after.GetCreationTimestamp(), svc.GetCreationTimestamp(); !at.Equal(&bt) || bt.IsZero() {
		t.Errorf("creationTimestamp %v, want %v kept", after.GetCreationTimestamp(), svc.GetCreationTimestamp())
	}
	if after.GetResourceVersion() == svc.GetResourceVersion() {
		t.Errorf("resourceVersion %s did not move", after.GetResourceVersion())
	}
	if got := len(after.(*v1alpha1.Service).Spec.Ports); got != 2 {
		t.Errorf("stored %d ports, want 2", got)
	}
}

func TestApplyRefusesWholeBatch(t *testing.T) {
	s := newStore(t)
	m := manager.New(s)
	rev := revision(t, s)
	_, err := m.Apply(context.Background(), strings.NewReader(`apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: good}
spec:
  selector: {app: good}
  ports: [{port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bad-route}
spec:
  parentRefs: [{group: "", kind: Service, name: good}]
  rules:
  - backendRefs:
    - {name: good, port: 80, weight: -1}
    - {name: good, port: 0}
---
apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: bad-dp}
spec:
  address: 127.0.0.1
  inbound: [{port: 70000, appPort: 8080}]
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: unknown-field}
spec:
  selectr: {app: x}
`))
	var invalid *manager.InvalidError
	if !errors.As(err, &invalid) {
		t.Fatalf("apply: %v, want an *InvalidError", err)
	}
	if got := revision(t, s); got != rev {
		t.Fatalf("a refused apply moved the store revision from %d to %d", rev, got)
	}
	if list, err := m.List(context.Background(), "", ""); err != nil || len(list) != 0 {
		t.Fatalf("after a refused apply the store holds %d objects (%v), want none", len(list), err)
	}
	var docs []int
	for _, d := range invalid.Documents {
		docs = append(docs, d.Document)
	}
	if diff := cmp.Diff([]int{2, 3, 4}, docs); diff != "" {
		t.Fatalf("documents at fault (-want +got):\n%s\n%v", diff, err)
	}
	for _, tc := range []struct {
		doc   int
		kind  string
		paths []string
	}{
		{2, "HTTPRoute", []string{"spec.rules[0].backendRefs[0].weight", "spec.rules[0].backendRefs[1].port"}},
		{3, "Dataplane", []string{"spec.inbound[0].port"}},
		{4, "", []string{"selectr"}},
	} {
		d := invalid.Documents[tc.doc-2]
		if d.Kind != tc.kind {
			t.Errorf("document %d: kind %q, want %q", tc.doc, d.Kind, tc.kind)
		}
		all := strings.Join(d.Errors, "\n")
		for _, p := range tc.paths {
			if !strings.Contains(all, p) {
				t.Errorf("document %d: errors do not name %s:\n%s", tc.doc, p, all)
			}
		}
	}
	msg := err.Error()
	for _, want := range []string{"refused, nothing changed", "document 2 (HTTPRoute default/bad-route)", "document 3 (Dataplane default/bad-dp)", "document 4"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error text lacks %q:\n%s", want, msg)
		}
	}
}

func TestApplySMI(t *testing.T) {
	s := newStore(t)
	m := manager.New(s)
	res := apply(t, m, `apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: api-paths}
spec:
  matches:
  - {name: v2-only, pathRegex: "/v2/.*"}
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: api-split}
spec:
  service: api
  matches:
  - {kind: HTTPRouteGroup, name: api-paths}
  backends:
  - {service: api-v1, weight: 80}
  - {service: api-v2, weight: 20}
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
metadata: {name: api-v1}
spec:
  selector: {app: api, version: v1}
  ports: [{port: 80, protocol: http}]
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: api-v2}
spec:
  selector: {app: api, version: v2}
  ports: [{port: 80, protocol: http}]
`)
	want := []string{
		"HTTPRoute default/api-split created",
		"Service default/api created", "Service default/api-v1 created", "Service default/api-v2 created",
	}
	if diff := cmp.Diff(want, actions(res)); diff != "" {
		t.Fatalf("apply (-want +got):\n%s", diff)
	}
	r := get(t, m, "HTTPRoute", "default", "api-split").(*gwv1.HTTPRoute)
	if got := r.Annotations[v1alpha1.ConvertedFromAnnotation]; got != "split.smi-spec.io/v1alpha4/TrafficSplit/api-split" {
		t.Errorf("annotation %s = %q", v1alpha1.ConvertedFromAnnotation, got)
	}
	if len(r.Spec.Rules) != 2 || len(r.Spec.Rules[0].Matches) == 0 {
		t.Fatalf("rules %+v: want the group's matches, then the rest to the root service", r.Spec.Rules)
	}
	var weights []int32
	for _, b := range r.Spec.Rules[0].BackendRefs {
		weights = append(weights, *b.Weight)
	}
	if diff := cmp.Diff([]int32{80, 20}, weights); diff != "" {
		t.Errorf("weights (-want +got):\n%s", diff)
	}
	for _, c := range r.Status.Parents[0].Conditions {
		if c.Status != metav1.ConditionTrue {
			t.Errorf("condition %s %s: %s", c.Type, c.Reason, c.Message)
		}
	}
}

func TestApplySMIWithoutRootService(t *testing.T) {
	s := newStore(t)
	m := manager.New(s)
	rev := revision(t, s)
	_, err := m.Apply(context.Background(), strings.NewReader(`apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: orphan}
spec:
  service: nowhere
  backends: [{service: a, weight: 1}]
`))
	var invalid *manager.InvalidError
	if !errors.As(err, &invalid) || len(invalid.Documents) != 1 || invalid.Documents[0].Document != 1 {
		t.Fatalf("apply: %v, want document 1 refused", err)
	}
	if !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("error does not name the missing root service: %v", err)
	}
	if got := revision(t, s); got != rev {
		t.Fatalf("store revision moved from %d to %d", rev, got)
	}
}

func TestDataplaneStatusSurvivesApply(t *testing.T) {
	s := newStore(t)
	m := manager.New(s)
	ctx := context.Background()
	apply(t, m, `apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: web-1, labels: {app: web}}
spec:
  address: 127.0.0.1
  inbound: [{port: 10001, appPort: 8001}]
`)
	// The control plane writes status straight to the store, as it does on
	// registration.
	key := store.Key{Kind: "Dataplane", Namespace: "default", Name: "web-1"}
	cur, err := s.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	obj, _ := v1alpha1.Decode(cur.Value)
	dp := obj.(*v1alpha1.Dataplane)
	dp.Status.Connected = true
	dp.Status.ControlPlane = "replica-1"
	dp.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Connected", LastTransitionTime: metav1.Now()}}
	data, _ := v1alpha1.Encode(dp)
	if _, err := s.Update(ctx, key, data, cur.Revision); err != nil {
		t.Fatal(err)
	}

	res := apply(t, m, `apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: web-1, labels: {app: web}}
spec:
  address: 127.0.0.2
  inbound: [{port: 10001, appPort: 8001}]
status:
  connected: false
`)
	if res[0].Action != manager.Configured {
		t.Fatalf("action %s, want configured", res[0].Action)
	}
	got := get(t, m, "Dataplane", "default", "web-1").(*v1alpha1.Dataplane)
	if got.Spec.Address != "127.0.0.2" {
		t.Errorf("address %s, want the new 127.0.0.2", got.Spec.Address)
	}
	if !got.Status.Connected || got.Status.ControlPlane != "replica-1" {
		t.Errorf("status %+v: the stored connection status was lost", got.Status)
	}
	ready := find(got.Status.Conditions, "Ready")
	if ready == nil || ready.Status != metav1.ConditionTrue {
		t.Errorf("conditions %+v: want Ready True kept", got.Status.Conditions)
	}
	if find(got.Status.Conditions, "Accepted") == nil {
		t.Errorf("conditions %+v: want the computed Accepted too", got.Status.Conditions)
	}
}

func find(conds []metav1.Condition, typ string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}

func TestComputedStatus(t *testing.T) {
	s := newStore(t)
	m := manager.New(s)
	ctx := context.Background()
	apply(t, m, `apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: api}
spec:
  selector: {app: api}
  ports: [{port: 80, protocol: http}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: to-nowhere}
spec:
  parentRefs: [{group: "", kind: Service, name: api}]
  rules:
  - backendRefs: [{name: api-v9, port: 80}]
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: other, namespace: team-b}
spec:
  selector: {app: other}
  ports: [{port: 80}]
`)
	check := func(r *gwv1.HTTPRoute) {
		t.Helper()
		if len(r.Status.Parents) != 1 {
			t.Fatalf("parents status %+v", r.Status.Parents)
		}
		rr := find(r.Status.Parents[0].Conditions, v1alpha1.ConditionResolvedRefs)
		if rr == nil || rr.Status != metav1.ConditionFalse || rr.Reason != v1alpha1.ReasonBackendNotFound || !strings.Contains(rr.Message, "api-v9") {
			t.Errorf("ResolvedRefs %+v, want False/BackendNotFound naming api-v9", rr)
		}
		if acc := find(r.Status.Parents[0].Conditions, v1alpha1.ConditionAccepted); acc == nil || acc.Status != metav1.ConditionTrue {
			t.Errorf("Accepted %+v, want True", acc)
		}
	}
	check(get(t, m, "HTTPRoute", "default", "to-nowhere").(*gwv1.HTTPRoute))
	list, err := m.List(ctx, "HTTPRoute", "")
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %d, %v", len(list), err)
	}
	check(list[0].(*gwv1.HTTPRoute))

	// The backend appears: status follows without a write to the route.
	apply(t, m, `apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: api-v9}
spec:
  selector: {app: api}
  ports: [{port: 80}]
`)
	r := get(t, m, "HTTPRoute", "default", "to-nowhere").(*gwv1.HTTPRoute)
	if rr := find(r.Status.Parents[0].Conditions, v1alpha1.ConditionResolvedRefs); rr == nil || rr.Status != metav1.ConditionTrue {
		t.Errorf("ResolvedRefs %+v after the backend appeared, want True", rr)
	}

	// List: sorted, filtered by namespace.
	all, err := m.List(ctx, "Service", "")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range all {
		names = append(names, o.GetNamespace()+"/"+o.GetName())
	}
	if diff := cmp.Diff([]string{"default/api", "default/api-v9", "team-b/other"}, names); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}
	inB, err := m.List(ctx, "Service", "team-b")
	if err != nil || len(inB) != 1 || inB[0].GetName() != "other" {
		t.Errorf("list -n team-b: %v, %v", inB, err)
	}
	// A namespace filter does not hide cluster-scoped kinds.
	apply(t, m, "apiVersion: trellis.dev/v1alpha1\nkind: Mesh\nmetadata: {name: default}\n")
	meshes, err := m.List(ctx, "Mesh", "team-b")
	if err != nil || len(meshes) != 1 {
		t.Errorf("list meshes: %v, %v", meshes, err)
	}
	svc := all[0].(*v1alpha1.Service)
	if acc := find(svc.Status.Conditions, v1alpha1.ConditionAccepted); acc == nil || acc.Status != metav1.ConditionTrue || acc.ObservedGeneration != svc.Generation {
		t.Errorf("service status %+v", svc.Status)
	}
}

func TestDelete(t *testing.T) {
	s := newStore(t)
	m := manager.New(s)
	ctx := context.Background()
	apply(t, m, `apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: api}
spec:
  selector: {app: api}
  ports: [{port: 80}]
`)
	key := store.Key{Kind: "Service", Namespace: "default", Name: "api"}
	obj, err := m.Delete(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if obj.GetName() != "api" || obj.GetUID() == "" {
		t.Errorf("deleted object %s uid %q, want the stored api", obj.GetName(), obj.GetUID())
	}
	if _, err := m.Get(ctx, key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("get after delete: %v, want ErrNotFound", err)
	}
	if _, err := m.Delete(ctx, key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second delete: %v, want ErrNotFound", err)
	}
	// Applied again, it is a new object.
	if res := apply(t, m, `apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: api}
spec:
  selector: {app: api}
  ports: [{port: 80}]
`); res[0].Action != manager.Created {
		t.Errorf("re-apply after delete: %s, want created", res[0].Action)
	}
}

func TestApplyEmpty(t *testing.T) {
	m := manager.New(newStore(t))
	_, err := m.Apply(context.Background(), strings.NewReader("# nothing\n---\n"))
	if err == nil || !strings.Contains(err.Error(), "no documents") {
		t.Fatalf("apply of comments only: %v, want 'no documents'", err)
	}
}
