package translator

import (
	"maps"
	"slices"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

const kafkaMeshObjs = `apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata: {name: default}
spec:
  mtls: {mode: STRICT}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: kafka}
spec:
  selector: {app: kafka}
  ports: [{port: 9092, protocol: kafka}]
---
apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: kafka-0, labels: {app: kafka}}
spec:
  address: 10.0.0.10
  inbound: [{port: 9092, appPort: 19092, kafkaBrokerID: 0}]
---
apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: app-1, labels: {app: app}}
spec:
  address: 10.0.0.1
  outbound: [{service: kafka, localPort: 9092, kafka: {brokerPortBase: 19100}}]
---
apiVersion: trellis.dev/v1alpha1
kind: AccessPolicy
metadata: {name: writers}
spec:
  targetRefs: [{group: "", kind: Service, name: kafka}]
  action: ALLOW
  rules:
  - from: [{service: app}]
    to: [{kafka: {topics: [orders], operations: [produce]}}]
`

// replace returns objs with the object of kind T and name changed by f
// (a copy), and the old and new versions.
func replace[T interface {
	*v1alpha1.Dataplane | *v1alpha1.AccessPolicy
	v1alpha1.Object
}](t *testing.T, objs []v1alpha1.Object, name string, f func(T) T) ([]v1alpha1.Object, []v1alpha1.Object) {
	t.Helper()
	i := slices.IndexFunc(objs, func(o v1alpha1.Object) bool { _, ok := o.(T); return ok && o.GetName() == name })
	if i < 0 {
		t.Fatalf("no %s", name)
	}
	objs = slices.Clone(objs)
	prev := objs[i]
	objs[i] = f(prev.(T))
	return objs, []v1alpha1.Object{prev, objs[i]}
}

// listenerJSON translates p and returns its listeners as JSON, by name.
func listenerJSON(t *testing.T, idx *Index, p Proxy) map[string]string {
	t.Helper()
	res, err := Translate(idx, p)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range res.Listeners {
		l := r.(*listenerv3.Listener)
		js, err := protojson.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		out[l.GetName()] = string(js)
	}
	return out
}

// TestKafkaFollowsChanges updates a warm Index and expects the caller's
// broker listeners to follow a broker's id and the broker's inbound
// policy to follow the AccessPolicy's topics: neither may come from a
// piece built for the previous objects.
func TestKafkaFollowsChanges(t *testing.T) {
	objs := decodeObjects(t, []byte(kafkaMeshObjs))
	idx := NewIndex(objs, testBundles)
	ps := proxiesOf(objs)
	broker, app := ps[0], ps[1]
	if got := listenerJSON(t, idx, app); got["outbound:127.0.0.1:19100"] == "" {
		t.Fatalf("no listener for broker 0: %v", slices.Sorted(maps.Keys(got)))
	}
	if got := listenerJSON(t, idx, broker)["inbound:10.0.0.10:9092"]; !strings.Contains(got, `"orders"`) {
		t.Fatalf("broker's inbound has no policy for orders: %s", got)
	}

	objs, changed := replace(t, objs, "kafka-0", func(d *v1alpha1.Dataplane) *v1alpha1.Dataplane {
		c := *d
		c.Spec.Inbound = slices.Clone(c.Spec.Inbound)
		id := int32(3)
		c.Spec.Inbound[0].KafkaBrokerID = &id
		return &c
	})
	res, err := Translate(idx, app)
	if err != nil {
		t.Fatal(err)
	}
	if !res.DependsOn(changed[0]) || !res.DependsOn(changed[1]) {
		t.Fatal("the caller does not depend on the broker's Dataplane")
	}
	idx = idx.Update(objs, changed)
	got := listenerJSON(t, idx, proxiesOf(objs)[1])
	if got["outbound:127.0.0.1:19100"] != "" || got["outbound:127.0.0.1:19103"] == "" {
		t.Fatalf("after broker id 0 → 3, listeners %v, want 19103 and not 19100", slices.Sorted(maps.Keys(got)))
	}
	if !strings.Contains(got["outbound:127.0.0.1:9092"], `"id":3`) {
		t.Errorf("bootstrap listener does not rewrite broker 3: %s", got["outbound:127.0.0.1:9092"])
	}

	objs, changed = replace(t, objs, "writers", func(p *v1alpha1.AccessPolicy) *v1alpha1.AccessPolicy {
		c := *p
		c.Spec.Rules = []v1alpha1.AccessRule{{From: p.Spec.Rules[0].From,
			To: []v1alpha1.AccessOperation{{Kafka: &v1alpha1.AccessKafka{Topics: []string{"payments"}}}}}}
		return &c
	})
	idx = idx.Update(objs, changed)
	in := listenerJSON(t, idx, proxiesOf(objs)[0])["inbound:10.0.0.10:9092"]
	if strings.Contains(in, `"orders"`) || !strings.Contains(in, `"payments"`) {
		t.Errorf("broker's inbound after the policy changed to payments: %s", in)
	}
}
