package translator

import (
	"fmt"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

// bigMesh is a mesh of services Services with perService Dataplanes each,
// an HTTPRoute splitting every service between itself and the next one,
// and a TrafficPolicy on every tenth Service.
func bigMesh(services, perService int) []v1alpha1.Object {
	var objs []v1alpha1.Object
	kind := gwv1.Kind("Service")
	for i := range services {
		name := fmt.Sprintf("svc-%d", i)
		objs = append(objs, &v1alpha1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec:       v1alpha1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []v1alpha1.ServicePort{{Port: 80, Protocol: v1alpha1.ProtocolHTTP}}},
		})
		next := gwv1.ObjectName(fmt.Sprintf("svc-%d", (i+1)%services))
		port := gwv1.PortNumber(80)
		objs = append(objs, &gwv1.HTTPRoute{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: gwv1.HTTPRouteSpec{
				CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Kind: &kind, Name: gwv1.ObjectName(name)}}},
				Rules: []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{
					{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(name), Port: &port}, Weight: new(int32(90))}},
					{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: next, Port: &port}, Weight: new(int32(10))}},
				}}},
			},
		})
		if i%10 == 0 {
			objs = append(objs, &v1alpha1.TrafficPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
				Spec: v1alpha1.TrafficPolicySpec{
					TargetRefs: []gwv1.LocalPolicyTargetReference{{Kind: "Service", Name: gwv1.ObjectName(name)}},
					PolicySpec: v1alpha1.PolicySpec{ConnectionLimits: &v1alpha1.ConnectionLimits{MaxRequests: new(uint32(100))}},
				},
			})
		}
		for j := range perService {
			objs = append(objs, &v1alpha1.Dataplane{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", name, j), Namespace: "default", Labels: map[string]string{"app": name, "pod": fmt.Sprint(j)}},
				Spec: v1alpha1.DataplaneSpec{
					Address:  fmt.Sprintf("10.%d.%d.%d", i/256, i%256, j),
					Inbound:  []v1alpha1.Inbound{{Port: 80, AppPort: 8080}},
					Outbound: []v1alpha1.Outbound{{Service: fmt.Sprintf("svc-%d", (i+7)%services), LocalPort: 10001}, {Service: fmt.Sprintf("svc-%d", (i+13)%services), LocalPort: 10002}},
					Locality: &v1alpha1.Locality{Region: "eu", Zone: fmt.Sprintf("eu-%d", j%3)},
				},
			})
		}
	}
	return objs
}

func BenchmarkNewIndex(b *testing.B) {
	objs := bigMesh(1000, 10)
	b.ReportAllocs()
	for b.Loop() {
		NewIndex(objs)
	}
}

// BenchmarkTranslateSidecar is one sidecar with two outbounds in a mesh of
// 1,000 services and 10,000 endpoints: its cost must follow what it
// references, not the mesh.
func BenchmarkTranslateSidecar(b *testing.B) {
	objs := bigMesh(1000, 10)
	idx := NewIndex(objs)
	p := Proxy{Mesh: "default", Dataplane: objs[3].(*v1alpha1.Dataplane)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Translate(idx, p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTranslateOutboundHTTP is a sidecar with the outbound HTTP port,
// which reads every HTTP service of the mesh.
func BenchmarkTranslateOutboundHTTP(b *testing.B) {
	objs := bigMesh(1000, 10)
	idx := NewIndex(objs)
	dp := *objs[3].(*v1alpha1.Dataplane)
	dp.Spec.OutboundHTTPPort = 15001
	p := Proxy{Mesh: "default", Dataplane: &dp}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Translate(idx, p); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSidecarScoping checks config scoping in the big mesh: a sidecar with
// two outbounds gets only their services and the ones their routes reach.
func TestSidecarScoping(t *testing.T) {
	objs := bigMesh(1000, 10)
	p := Proxy{Mesh: "default", Dataplane: objs[3].(*v1alpha1.Dataplane)} // svc-0-0: outbounds svc-7, svc-13
	res, err := Translate(NewIndex(objs), p)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range res.Clusters {
		names = append(names, nameOf(c))
	}
	want := []string{"default/svc-13:80", "default/svc-14:80", "default/svc-7:80", "default/svc-8:80", "inbound:80"}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Errorf("clusters = %v, want %v", names, want)
	}
	if len(res.Endpoints) != 4 || len(res.Listeners) != 3 || len(res.Routes) != 2 {
		t.Errorf("got %d endpoints, %d listeners, %d routes; want 4, 3, 2", len(res.Endpoints), len(res.Listeners), len(res.Routes))
	}
	validateWithProxy(t, res)
}

// pushFixture is the big mesh with every sidecar translated once (a warm
// Index), and a change to the route of svc-7, which svc-0-* call.
func pushFixture() (objs, next, changed []v1alpha1.Object, proxies []Proxy, idx *Index) {
	objs = bigMesh(1000, 10)
	idx = NewIndex(objs)
	for _, o := range objs {
		if dp, ok := o.(*v1alpha1.Dataplane); ok {
			proxies = append(proxies, Proxy{Mesh: "default", Dataplane: dp})
		}
	}
	for _, p := range proxies {
		_, _ = Translate(idx, p)
	}
	next = slices.Clone(objs)
	for i, o := range next {
		if r, ok := o.(*gwv1.HTTPRoute); ok && r.Name == "svc-7" {
			c := r.DeepCopy()
			c.Spec.Rules[0].BackendRefs[0].Weight = new(int32(50))
			next[i] = c
			changed = []v1alpha1.Object{r, c}
		}
	}
	return objs, next, changed, proxies, idx
}

// BenchmarkIndexUpdate is the index side of a push: a route changed in
// the big mesh, from a warm Index.
func BenchmarkIndexUpdate(b *testing.B) {
	_, next, changed, _, idx := pushFixture()
	b.ReportAllocs()
	for b.Loop() {
		idx.Update(next, changed)
	}
}

// BenchmarkPush is a whole push of the big mesh's 10,000 sidecars after a
// route change: the index update and every sidecar's translation.
func BenchmarkPush(b *testing.B) {
	_, next, changed, proxies, idx := pushFixture()
	b.ReportAllocs()
	for b.Loop() {
		up := idx.Update(next, changed)
		for _, p := range proxies {
			if _, err := Translate(up, p); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkIndexUpdateDataplanes is a burst of 1,000 changed Dataplanes
// (proxies connecting) in the big mesh, from a warm Index.
func BenchmarkIndexUpdateDataplanes(b *testing.B) {
	objs, _, _, _, idx := pushFixture()
	next := slices.Clone(objs)
	var changed []v1alpha1.Object
	for i, o := range next {
		if dp, ok := o.(*v1alpha1.Dataplane); ok && len(changed) < 2000 {
			c := *dp // Spec's slices are shared, not changed
			c.Spec.Address += "0"
			next[i] = &c
			changed = append(changed, dp, &c)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		idx.Update(next, changed)
	}
}

// mtlsMesh is bigMesh with mutual TLS STRICT, a default of DENY and an
// ALLOW AccessPolicy per Service naming its callers.
func mtlsMesh(services, perService int) []v1alpha1.Object {
	objs := append(bigMesh(services, perService), &v1alpha1.Mesh{ObjectMeta: metav1.ObjectMeta{Name: "default"},
		Spec: v1alpha1.MeshSpec{AccessPolicy: &v1alpha1.MeshAccessPolicy{Default: v1alpha1.AccessDeny}}})
	for i := range services {
		name := fmt.Sprintf("svc-%d", i)
		objs = append(objs, &v1alpha1.AccessPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: v1alpha1.AccessPolicySpec{
				TargetRefs: []gwv1.LocalPolicyTargetReference{{Kind: "Service", Name: gwv1.ObjectName(name)}},
				Action:     v1alpha1.AccessAllow,
				Rules: []v1alpha1.AccessRule{{
					From: []v1alpha1.AccessSource{{Service: fmt.Sprintf("svc-%d", (i+services-7)%services)}, {Service: fmt.Sprintf("svc-%d", (i+services-13)%services)}},
					To:   []v1alpha1.AccessOperation{{Methods: []string{"GET"}, Paths: []v1alpha1.AccessPathMatch{{Prefix: "/api/"}}}},
				}},
			},
		})
	}
	return objs
}

// BenchmarkPushMTLS is a fresh Index of a 1,000-service mTLS mesh with
// access policies and the first translation of 100 of its sidecars: the
// secured clusters (identities from the label index) and inbound RBAC
// built once and shared.
func BenchmarkPushMTLS(b *testing.B) {
	objs := mtlsMesh(1000, 10)
	var proxies []Proxy
	for _, o := range objs {
		if dp, ok := o.(*v1alpha1.Dataplane); ok && len(proxies) < 100 {
			proxies = append(proxies, Proxy{Mesh: "default", Dataplane: dp})
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		idx := NewIndex(objs, testBundles)
		for _, p := range proxies {
			if _, err := Translate(idx, p); err != nil {
				b.Fatal(err)
			}
		}
	}
}
