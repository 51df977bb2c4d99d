package translator

import (
	"fmt"
	"slices"
	"testing"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

// TestDependsOnChange checks DependsOnChange against DependsOn of each
// changed object, for every sidecar of a mesh, with changes of one or many
// Dataplanes (labels changed too), with and without a Service change.
func TestDependsOnChange(t *testing.T) {
	objs := bigMesh(40, 3)
	var dps []*v1alpha1.Dataplane
	var svcs []*v1alpha1.Service
	for _, o := range objs {
		switch o := o.(type) {
		case *v1alpha1.Dataplane:
			dps = append(dps, o)
		case *v1alpha1.Service:
			svcs = append(svcs, o)
		}
	}
	for _, tc := range []struct {
		name    string
		changed func(next []v1alpha1.Object) []v1alpha1.Object
	}{
		{"one dataplane", func(next []v1alpha1.Object) []v1alpha1.Object { return changeDataplanes(next, dps[5:6], false) }},
		{"many dataplanes", func(next []v1alpha1.Object) []v1alpha1.Object { return changeDataplanes(next, dps[10:70], false) }},
		{"relabelled", func(next []v1alpha1.Object) []v1alpha1.Object { return changeDataplanes(next, dps[30:33], true) }},
		{"service and dataplanes", func(next []v1alpha1.Object) []v1alpha1.Object {
			c := *svcs[9]
			c.Spec.Ports = slices.Clone(c.Spec.Ports)
			c.Spec.Ports[0].Port = 81
			next[slices.Index(next, v1alpha1.Object(svcs[9]))] = &c
			return append(changeDataplanes(next, dps[50:52], false), svcs[9], &c)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			idx := NewIndex(objs)
			next := slices.Clone(objs)
			changed := tc.changed(next)
			c := idx.Update(next, changed).Change(changed)
			checked := 0
			for _, dp := range dps {
				res, err := Translate(idx, Proxy{Mesh: "default", Dataplane: dp})
				if err != nil {
					t.Fatal(err)
				}
				want := slices.ContainsFunc(changed, res.DependsOn)
				if got := res.DependsOnChange(c); got != want {
					t.Errorf("%s: DependsOnChange = %v, DependsOn of some = %v", describe(dp), got, want)
				}
				if want {
					checked++
				}
			}
			if checked == 0 || checked == len(dps) {
				t.Errorf("%d of %d proxies depend on the change: the case tells nothing", checked, len(dps))
			}
		})
	}
}

// changeDataplanes replaces each of dps in next with a copy on another
// address (and, with relabel, selected by another Service), returning old
// and new versions.
func changeDataplanes(next []v1alpha1.Object, dps []*v1alpha1.Dataplane, relabel bool) []v1alpha1.Object {
	var changed []v1alpha1.Object
	for _, dp := range dps {
		c := *dp
		c.Spec.Address += "9"
		if relabel {
			c.Labels = map[string]string{"app": "svc-3", "pod": fmt.Sprint("x", dp.Name)}
		}
		next[slices.Index(next, v1alpha1.Object(dp))] = &c
		changed = append(changed, dp, &c)
	}
	return changed
}
