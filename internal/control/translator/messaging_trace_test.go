package translator

import (
	"slices"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

const messagingTraceObjs = `apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata: {name: default}
spec:
  mtls: {mode: DISABLED}
  tracing: {collector: 10.0.0.99:4317, messaging: {kafka: true}}
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
  outbound:
  - {service: kafka, localPort: 9092, kafka: {brokerPortBase: 19100, maxBrokerID: 1}}
`

// chains returns the filter names of every listener of p, by listener.
func chains(t *testing.T, idx *Index, p Proxy) map[string][]string {
	t.Helper()
	res, err := Translate(idx, p)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, r := range res.Listeners {
		l := r.(*listenerv3.Listener)
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				out[l.GetName()] = append(out[l.GetName()], f.GetName())
			}
		}
	}
	return out
}

// TestKafkaTraceOnCallerOnly: with spec.tracing.messaging.kafka, the
// caller's bootstrap and per-broker listeners (address rewrite) carry
// kafka_trace between kafka_broker and tcp_proxy; the broker's inbound
// does not. Turning the setting off on a warm Index removes it.
func TestKafkaTraceOnCallerOnly(t *testing.T) {
	objs := decodeObjects(t, []byte(messagingTraceObjs))
	idx := NewIndex(objs)
	ps := proxiesOf(objs)
	var app, broker Proxy
	for _, p := range ps {
		if p.Dataplane == nil {
			continue
		}
		switch p.Dataplane.Name {
		case "app-1":
			app = p
		case "kafka-0":
			broker = p
		}
	}
	traced := []string{kafkaFilterName, kafkaTraceName, tcpProxyFilterName}
	plain := []string{kafkaFilterName, tcpProxyFilterName}
	got := chains(t, idx, app)
	for _, name := range []string{"outbound:127.0.0.1:9092", "outbound:127.0.0.1:19100"} {
		if !slices.Equal(got[name], traced) {
			t.Errorf("caller's %s: filters %v, want %v (all: %v)", name, got[name], traced, got)
		}
	}
	inbounds := 0
	for name, fs := range chains(t, idx, broker) {
		if !strings.HasPrefix(name, "inbound") || !slices.Contains(fs, kafkaFilterName) {
			continue
		}
		inbounds++
		if !slices.Equal(fs, plain) {
			t.Errorf("broker's %s: filters %v, want %v", name, fs, plain)
		}
	}
	if inbounds == 0 {
		t.Error("the broker has no inbound with kafka_broker")
	}

	i := slices.IndexFunc(objs, func(o v1alpha1.Object) bool { _, ok := o.(*v1alpha1.Mesh); return ok })
	prev := objs[i].(*v1alpha1.Mesh)
	m := *prev
	tr := *m.Spec.Tracing
	tr.Messaging = nil
	m.Spec.Tracing = &tr
	objs = slices.Clone(objs)
	objs[i] = &m
	idx = idx.Update(objs, []v1alpha1.Object{prev, &m})
	got = chains(t, idx, app)
	for _, name := range []string{"outbound:127.0.0.1:9092", "outbound:127.0.0.1:19100"} {
		if !slices.Equal(got[name], plain) {
			t.Errorf("after turning it off, caller's %s: filters %v, want %v", name, got[name], plain)
		}
	}
}
