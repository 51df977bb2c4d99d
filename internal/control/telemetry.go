package control

import (
	"strconv"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
	"github.com/trellis-mesh/trellis/internal/control/telemetry"
	"github.com/trellis-mesh/trellis/internal/store"
)

// Telemetry returns the replica's golden-metrics aggregator, fed by the
// proxies connected to it (trellis stat, trellis edges, GET /metrics).
func (c *Control) Telemetry() *telemetry.Aggregator { return c.stats }

// meshResolver answers the aggregator from the resources the reconciler
// holds: a proxy's mesh, identity and the services of its inbound ports.
type meshResolver struct{ r *reconciler }

var _ telemetry.Resolver = meshResolver{}

// Proxy implements telemetry.Resolver.
func (m meshResolver) Proxy(nodeID string) (telemetry.Proxy, bool) {
	ns, name, ok := splitID(nodeID)
	if !ok {
		return telemetry.Proxy{}, false
	}
	m.r.mu.Lock()
	defer m.r.mu.Unlock()
	dp, ok := m.r.objs[store.Key{Kind: "Dataplane", Namespace: ns, Name: name}].(*v1alpha1.Dataplane)
	if !ok {
		return telemetry.Proxy{}, false
	}
	mesh := v1alpha1.MeshOf(dp)
	p := telemetry.Proxy{Mesh: mesh, Dataplane: ns + "/" + name, Service: ns + "/" + v1alpha1.IdentityService(dp), Inbound: map[string][]string{}}
	for _, in := range dp.Spec.Inbound {
		sp := in.ServicePort
		if sp == 0 {
			sp = in.Port
		}
		prefix := "inbound:" + strconv.Itoa(int(in.Port))
		for _, k := range m.r.idx.ServicesServing(dp, sp) {
			p.Inbound[prefix] = append(p.Inbound[prefix], k.String())
		}
	}
	return p, true
}

// Services implements telemetry.Resolver.
func (m meshResolver) Services() []telemetry.ServiceRef {
	m.r.mu.Lock()
	defer m.r.mu.Unlock()
	var out []telemetry.ServiceRef
	for _, o := range m.r.objs {
		if s, ok := o.(*v1alpha1.Service); ok {
			out = append(out, telemetry.ServiceRef{Mesh: v1alpha1.MeshOf(s), Name: v1alpha1.NamespaceOf(s) + "/" + s.Name})
		}
	}
	return out
}
