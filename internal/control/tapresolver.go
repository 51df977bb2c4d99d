package control

import (
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
	"github.com/trellis-mesh/trellis/internal/control/tap"
	"github.com/trellis-mesh/trellis/internal/store"
)

// Tap returns the replica's tap hub (trellis tap, GET /api/v1/tap).
func (c *Control) Tap() *tap.Hub { return c.tap }

// tapResolver answers the tap hub from the resources the reconciler
// holds.
type tapResolver struct{ r *reconciler }

var _ tap.Resolver = tapResolver{}

// meshObject returns the Mesh object of mesh, nil when there is none.
// The caller holds r.mu.
func (t tapResolver) meshObject(mesh string) *v1alpha1.Mesh {
	m, _ := t.r.objs[store.Key{Kind: "Mesh", Name: mesh}].(*v1alpha1.Mesh)
	return m
}

// Proxy implements tap.Resolver.
func (t tapResolver) Proxy(node string) (tap.Proxy, bool) {
	ns, name, ok := splitID(node)
	if !ok {
		return tap.Proxy{}, false
	}
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	dp, ok := t.r.objs[store.Key{Kind: "Dataplane", Namespace: ns, Name: name}].(*v1alpha1.Dataplane)
	if !ok || t.r.idx == nil {
		return tap.Proxy{}, false
	}
	mesh := v1alpha1.MeshOf(dp)
	m := t.meshObject(mesh)
	svc := v1alpha1.IdentityService(dp)
	p := tap.Proxy{Mesh: mesh, Dataplane: ns + "/" + name, Service: ns + "/" + svc, Inbound: map[string][]string{},
		Redact: v1alpha1.TapRedactHeadersOf(m)}
	p.Identity = identityOf(mesh, m, svc)
	if n := t.r.nodes[node]; n != nil && n.res != nil {
		p.Reads = make(map[string]bool, len(n.res.Services))
		for k := range n.res.Services {
			p.Reads[k.String()] = true
		}
	}
	for _, in := range dp.Spec.Inbound {
		sp := in.ServicePort
		if sp == 0 {
			sp = in.Port
		}
		cl := "inbound:" + strconv.Itoa(int(in.Port))
		for _, k := range t.r.idx.ServicesServing(dp, sp) {
			p.Inbound[cl] = append(p.Inbound[cl], k.String())
		}
	}
	return p, true
}

// Target implements tap.Resolver.
func (t tapResolver) Target(tg tap.Target) (string, bool) {
	kind := "Service"
	if tg.Kind == tap.KindDataplane {
		kind = "Dataplane"
	}
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	o, ok := t.r.objs[store.Key{Kind: kind, Namespace: tg.Namespace, Name: tg.Name}]
	if !ok {
		return "", false
	}
	return v1alpha1.MeshOf(o), true
}

// ServiceOfIdentity implements tap.Resolver: the namespace of a
// Dataplane of mesh with that identity service, plus the service.
func (t tapResolver) ServiceOfIdentity(mesh, id string) string {
	u, err := url.Parse(id)
	if err != nil || u.Scheme != "spiffe" {
		return ""
	}
	m, svc, ok := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	if !ok || m != mesh {
		return ""
	}
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	for _, o := range t.r.objs {
		if dp, ok := o.(*v1alpha1.Dataplane); ok && v1alpha1.MeshOf(dp) == mesh && v1alpha1.IdentityService(dp) == svc {
			return v1alpha1.NamespaceOf(dp) + "/" + svc
		}
	}
	return ""
}

// identityOf is the SPIFFE ID of svc's proxies in mesh (Mesh object m,
// nil when none), or "" when the mesh has no mutual TLS.
func identityOf(mesh string, m *v1alpha1.Mesh, svc string) string {
	if v1alpha1.MTLSModeOf(m) == v1alpha1.MTLSDisabled {
		return ""
	}
	return (&url.URL{Scheme: "spiffe", Host: v1alpha1.TrustDomainOf(mesh, m), Path: "/" + mesh + "/" + svc}).String()
}

// IdentityAt implements tap.Resolver: the identity of the Dataplane of
// mesh with an inbound port at addr.
func (t tapResolver) IdentityAt(mesh, addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	m := t.meshObject(mesh)
	if v1alpha1.MTLSModeOf(m) == v1alpha1.MTLSDisabled {
		return ""
	}
	for _, o := range t.r.objs {
		dp, ok := o.(*v1alpha1.Dataplane)
		if !ok || dp.Spec.Address != host || v1alpha1.MeshOf(dp) != mesh {
			continue
		}
		for _, in := range dp.Spec.Inbound {
			if strconv.Itoa(int(in.Port)) == port {
				return identityOf(mesh, m, v1alpha1.IdentityService(dp))
			}
		}
	}
	return ""
}
