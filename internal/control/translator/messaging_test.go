package translator

import (
	"slices"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

const messagingObjs = `apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata: {name: default}
spec:
  mtls: {mode: DISABLED}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: events}
spec:
  selector: {app: broker}
  ports: [{port: 4222, protocol: tcp}]
---
apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: broker-1, labels: {app: broker}}
spec:
  address: 10.0.0.2
  inbound: [{port: 4222, appPort: 14222}]
---
apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: app-1, labels: {app: app}}
spec:
  address: 10.0.0.1
  outbound: [{service: events, localPort: 4222}]
`

// TestMessagingFollowsProtocol changes the protocol of a Service port on
// a warm Index (tcp → nats → kafka → tcp) and expects the caller's
// outbound and the server's inbound to follow each step: the cached
// outbound and protocol filters must not outlive the protocol they were
// built for.
func TestMessagingFollowsProtocol(t *testing.T) {
	objs := decodeObjects(t, []byte(messagingObjs))
	i := slices.IndexFunc(objs, func(o v1alpha1.Object) bool { _, ok := o.(*v1alpha1.Service); return ok })
	idx := NewIndex(objs)
	for _, step := range []struct {
		proto v1alpha1.Protocol
		want  string // the filter before tcp_proxy; "" for none
	}{
		{v1alpha1.ProtocolTCP, ""},
		{v1alpha1.ProtocolNATS, natsFilterName},
		{v1alpha1.ProtocolKafka, kafkaFilterName},
		{v1alpha1.ProtocolTCP, ""},
	} {
		prev := objs[i]
		c := *prev.(*v1alpha1.Service)
		c.Spec.Ports = slices.Clone(c.Spec.Ports)
		c.Spec.Ports[0].Protocol = step.proto
		svc := &c
		objs = slices.Clone(objs)
		objs[i] = svc
		idx = idx.Update(objs, []v1alpha1.Object{prev, svc})
		for _, p := range proxiesOf(objs)[:2] {
			res, err := Translate(idx, p)
			if err != nil {
				t.Fatal(err)
			}
			l := res.Listeners[0].(*listenerv3.Listener)
			var names []string
			for _, f := range l.GetFilterChains()[0].GetFilters() {
				names = append(names, f.GetName())
			}
			want := []string{tcpProxyFilterName}
			if step.want != "" {
				want = []string{step.want, tcpProxyFilterName}
			}
			if !slices.Equal(names, want) {
				t.Errorf("%s, protocol %s: listener %s has filters %v, want %v", p.Dataplane.Name, step.proto, l.GetName(), names, want)
			}
		}
	}
}
