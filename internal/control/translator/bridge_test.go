package translator

import (
	"testing"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

// TestBridgeDependsOn: only sidecars with the bridge listener depend on
// Brokers and Subscriptions of their mesh.
func TestBridgeDependsOn(t *testing.T) {
	objs := decodeObjects(t, []byte(`apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: orders}
spec: {selector: {app: orders}, ports: [{port: 8080}]}
---
apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: with, labels: {app: orders}}
spec: {address: 10.0.0.1, inbound: [{port: 8080, appPort: 18080}], bridge: {port: 3500}}
---
apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: without, labels: {app: orders}}
spec: {address: 10.0.0.2, inbound: [{port: 8080, appPort: 18080}]}
`))
	idx := NewIndex(objs)
	broker := &v1alpha1.Broker{}
	broker.Name = "events"
	other := &v1alpha1.Subscription{}
	other.Name, other.Labels = "s", map[string]string{v1alpha1.MeshLabel: "blue"}
	for _, tc := range []struct {
		dp   string
		obj  v1alpha1.Object
		want bool
	}{
		{"with", broker, true},
		{"without", broker, false},
		{"with", other, false},
	} {
		var dp *v1alpha1.Dataplane
		for _, o := range objs {
			if d, ok := o.(*v1alpha1.Dataplane); ok && d.Name == tc.dp {
				dp = d
			}
		}
		res, err := Translate(idx, Proxy{Mesh: "default", Dataplane: dp})
		if err != nil {
			t.Fatal(err)
		}
		if got := res.DependsOn(tc.obj); got != tc.want {
			t.Errorf("%s.DependsOn(%s %s) = %v, want %v", tc.dp, v1alpha1.KindOf(tc.obj), tc.obj.GetName(), got, tc.want)
		}
	}
}
