package v1alpha1_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	api "github.com/trellis-mesh/trellis/api/v1alpha1"
)

const accessWorld = conditionsWorld + `
---
apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: web-1, labels: {app: web}}
spec: {address: 10.0.0.1}
---
apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: cron-7}
spec: {address: 10.0.0.2, identity: batch}
---
apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: pay-1, labels: {trellis.dev/mesh: other}}
spec: {address: 10.0.0.3}
`

func TestConditionsAccessPolicy(t *testing.T) {
	w := world(t, accessWorld)
	doc := func(meta, targets, rules string) string {
		return "apiVersion: trellis.dev/v1alpha1\nkind: AccessPolicy\nmetadata: " + meta + "\nspec:\n  action: DENY\n  targetRefs: " + targets + "\n  rules: " + rules + "\n"
	}
	api8080 := "[{group: '', kind: Service, name: api}]"
	tests := []struct {
		name, doc string
		want      []string
	}{
		{"resolved: Services, Dataplane identities (label, spec.identity), another mesh", doc("{name: p}", api8080,
			"[{from: [{service: api}, {service: web}, {service: batch}, {service: pay-1, mesh: other}, {service: billing, mesh: other}, {any: true}], to: [{ports: [8080]}]}]"),
			[]string{"Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"}},
		{"missing target is status, not refusal", doc("{name: p}", "[{group: '', kind: Service, name: nope}, {group: '', kind: Service, name: billing}]", "[{from: [{any: true}]}]"),
			[]string{"Accepted=True/Accepted", `ResolvedRefs=False/BackendNotFound: spec.targetRefs[0]: Service default/nope not found; spec.targetRefs[1]: Service default/billing is in mesh "other", not "default"`}},
		{"missing sources and ports", doc("{name: p}", api8080,
			"[{from: [{service: ghost}, {service: web, mesh: other}, {service: web, mesh: nowhere}], to: [{ports: [8080, 9090]}]}]"),
			[]string{"Accepted=True/Accepted", `ResolvedRefs=False/BackendNotFound: spec.rules[0].from[0]: no Service or Dataplane of mesh "default" has the identity service "ghost"; ` +
				`spec.rules[0].from[1]: no Service or Dataplane of mesh "other" has the identity service "web"; ` +
				`spec.rules[0].from[2]: Mesh "nowhere" does not exist; ` +
				`spec.rules[0].to[0].ports[1]: no target Service has port 9090`}},
		{"invalid", doc("{name: p}", api8080, "[{from: []}]"),
			[]string{"Accepted=False/Invalid: spec.rules[0].from: Required value: at least one source (any: true for everyone)"}},
		{"missing mesh", doc("{name: p, labels: {trellis.dev/mesh: nowhere}}", api8080, "[{from: [{any: true}]}]"),
			[]string{`Accepted=False/MeshNotFound: Mesh "nowhere" does not exist`}},
		{"policies never conflict", doc("{name: a}", api8080, "[{from: [{any: true}]}]"),
			[]string{"Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"}},
	}
	older := world(t, doc("{name: older, creationTimestamp: '2020-01-01T00:00:00Z'}", api8080, "[{from: [{any: true}]}]"))
	w = append(w, older...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obj, err := api.Decode([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			api.Default(obj)
			if diff := cmp.Diff(tc.want, cond(api.Conditions(obj, w))); diff != "" {
				t.Fatalf("conditions (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDefaultAccessAndMesh(t *testing.T) {
	p := access().(*api.AccessPolicy)
	p.Labels = map[string]string{api.MeshLabel: "shop"}
	api.Default(p)
	var meshes []string
	for _, f := range p.Spec.Rules[0].From {
		meshes = append(meshes, f.Mesh)
	}
	if diff := cmp.Diff([]string{"shop", "jobs", ""}, meshes); diff != "" {
		t.Errorf("from[].mesh (-want +got):\n%s", diff)
	}
	if p.Namespace != api.DefaultNamespace {
		t.Errorf("namespace = %q", p.Namespace)
	}

	m := mesh().(*api.Mesh)
	api.Default(m)
	want := api.MeshSpec{
		TrustDomain:  "demo.trellis.local",
		MTLS:         &api.MTLS{Mode: api.MTLSStrict, CertificateTTL: dur(24 * time.Hour)},
		CA:           &api.MeshCA{Type: api.CABuiltin},
		AccessPolicy: &api.MeshAccessPolicy{Default: api.AccessAllow},
	}
	if diff := cmp.Diff(want, m.Spec); diff != "" {
		t.Errorf("defaulted Mesh spec (-want +got):\n%s", diff)
	}
	m = mesh(func(m *api.Mesh) {
		m.Spec.MTLS = &api.MTLS{Mode: api.MTLSDisabled}
		m.Spec.AccessPolicy = &api.MeshAccessPolicy{Default: api.AccessDeny}
	}).(*api.Mesh)
	api.Default(m)
	if m.Spec.MTLS.Mode != api.MTLSDisabled || m.Spec.MTLS.CertificateTTL.Duration != 24*time.Hour || m.Spec.AccessPolicy.Default != api.AccessDeny {
		t.Errorf("Default overwrote set fields or left a gap: %+v %+v", m.Spec.MTLS, m.Spec.AccessPolicy)
	}

	d := dataplane().(*api.Dataplane)
	api.Default(d)
	if d.Spec.Identity != "" {
		t.Errorf("Default wrote spec.identity %q; IdentityService computes it", d.Spec.Identity)
	}
}

func TestRefsAccessPolicy(t *testing.T) {
	w := world(t, "apiVersion: trellis.dev/v1alpha1\nkind: AccessPolicy\nmetadata: {name: p, namespace: shop}\nspec:\n  action: ALLOW\n  targetRefs: [{group: '', kind: Service, name: api}, {group: '', kind: Service, name: db}]\n  rules: [{from: [{service: web}]}]\n")
	var got []string
	for _, r := range api.Refs(w[0]) {
		got = append(got, r.String())
	}
	if diff := cmp.Diff("Service shop/api, Service shop/db", strings.Join(got, ", ")); diff != "" {
		t.Fatalf("Refs (-want +got):\n%s", diff)
	}
}
