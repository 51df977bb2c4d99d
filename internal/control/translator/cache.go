package translator

import (
	"strconv"
	"sync"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
)

// Most of a proxy's configuration does not depend on the proxy: an outbound
// to a service port is the same for every caller in one namespace, the
// outbound HTTP port and the proxyless form are the same for every caller
// in one namespace, an inbound's filter is the same for every instance of
// a service. An Index builds each of those once, on first use, and every
// proxy's Resources share the messages. That keeps a push to a thousand
// proxies from building and marshaling the same thing a thousand times,
// and lets the xDS server hash each shared message once.
//
// A cached piece is a function of the Index and of its key alone: the
// builder that makes it sees a Proxy with only Mesh and Proxyless set and
// the caller's namespace, and everything it records besides its messages
// (the Services, routes and clusters it read, for DependsOn and
// buildClusters) is kept as effects and replayed into every proxy that
// uses the piece. The Index is immutable, so nothing cached goes stale:
// a change to the store builds a new Index with empty caches.

// uncached makes every lookup miss and store nothing, and pieces record
// straight into the proxy's builder: the tests' reference translation.
// Only tests set it, before translating.
var uncached bool

// effects is what building a piece recorded besides its messages.
type effects struct {
	services map[ServiceKey]bool
	routes   map[routeKey]bool
	clusters []namedCluster
}

// namedCluster is a cluster a piece routes to, by Service key rather than
// *service, so that a piece carried over to a new Index (update.go)
// resolves it there.
type namedCluster struct {
	name string
	key  ServiceKey
	port int32
}

// record runs f with a builder for the same mesh, caller namespace, form
// (sidecar or proxyless) and traced service as b, but no Dataplane and
// empty bookkeeping, and returns what f recorded.
func (b *builder) record(f func(*builder)) *effects {
	if uncached {
		f(b)
		return &effects{}
	}
	sub := &builder{
		m: b.m, p: Proxy{Mesh: b.p.Mesh, Proxyless: b.p.Proxyless}, callerNS: b.callerNS, traced: b.traced,
		clusters: map[string]clusterRef{}, routeCfg: map[string]bool{},
		res: &Resources{Services: map[ServiceKey]bool{}, mesh: b.p.Mesh, routes: map[routeKey]bool{}},
	}
	f(sub)
	fx := &effects{services: sub.res.Services, routes: sub.res.routes, clusters: make([]namedCluster, 0, len(sub.clusters))}
	for n, c := range sub.clusters {
		fx.clusters = append(fx.clusters, namedCluster{n, c.s.key, c.port})
	}
	return fx
}

// replay records fx in b, as if b had built the piece itself.
func (b *builder) replay(fx *effects) {
	for k := range fx.services {
		b.res.Services[k] = true
	}
	for k := range fx.routes {
		b.res.routes[k] = true
	}
	for _, c := range fx.clusters {
		if s := b.m.services[c.key]; s != nil { // always, unless a carry-over missed a change
			b.clusters[c.name] = clusterRef{s, c.port}
		}
	}
}

// built is a cached piece of configuration: its messages and effects.
type built struct {
	listeners, routes []types.Resource
	fx                *effects
}

// Keys of the mesh-wide cache.
type (
	// httpAllKey: the outbound HTTP port of a caller namespace, for a
	// traced service (builder.traced).
	httpAllKey struct {
		callerNS string
		port     int32
		traced   string
	}
	// proxylessKey: the proxyless configuration of a caller namespace.
	proxylessKey struct{ callerNS string }
	// inboundKey: an inbound's filter, for the Service serving it (nil:
	// none) on a service port, on a listener port, for a traced service
	// (builder.traced).
	inboundKey struct {
		port, servicePort int32
		served            *service
		traced            string
	}
)

// cached returns the piece under key, building it with f on first use.
// Concurrent first uses may both build it; one result is kept and
// returned to both, so the messages are shared either way.
func (m *meshIndex) cached(key any, f func() *built) *built {
	if uncached {
		return f()
	}
	if v, ok := m.cache.Load(key); ok {
		return v.(*built)
	}
	v, _ := m.cache.LoadOrStore(key, f())
	return v.(*built)
}

// inboundFilter returns the inbound filter under key, building it with f
// on first use.
func (m *meshIndex) inboundFilter(key inboundKey, f func() *listenerv3.Filter) *listenerv3.Filter {
	if uncached {
		return f()
	}
	if v, ok := m.cache.Load(key); ok {
		return v.(*listenerv3.Filter)
	}
	v, _ := m.cache.LoadOrStore(key, f())
	return v.(*listenerv3.Filter)
}

// outboundKey names an outbound to one port of a service from one caller
// namespace (routes are chosen by the caller's namespace, GEP-1294), for
// a traced service (builder.traced: the connection manager's tracing
// names it).
type outboundKey struct {
	port     int32
	callerNS string
	traced   string
}

// builtOutbound is an outbound's filters (a broker port's protocol filter,
// messaging.go, then the terminal one), its route configuration (nil for
// TCP) and its listeners by local port.
type builtOutbound struct {
	filters   []*listenerv3.Filter
	cfg       *routev3.RouteConfiguration
	fx        *effects
	listeners sync.Map // local port (int32) → *listenerv3.Listener
}

// outboundFilter returns the outbound to port of s for b's caller
// namespace, building it on first use.
func (b *builder) outboundFilter(s *service, port int32) *builtOutbound {
	key := outboundKey{port, b.callerNS, b.traced}
	if v, ok := s.cache.Load(key); ok {
		return v.(*builtOutbound)
	}
	o := &builtOutbound{}
	cname := ClusterName(s.key, port)
	o.fx = b.record(func(b *builder) {
		b.res.Services[s.key] = true // so that a change to s drops the piece (update.go)
		if isHTTP(protocolOf(portOf(s.spec, port))) {
			rc := "outbound:" + cname
			o.cfg = &routev3.RouteConfiguration{Name: rc, VirtualHosts: []*routev3.VirtualHost{{
				Name: cname, Domains: []string{"*"}, Routes: b.serviceRoutes(s, port),
			}}}
			o.filters = []*listenerv3.Filter{b.rdsFilter(cname, rc)}
		} else {
			o.filters = messagingFilters(s, port, false, b.tcpProxy(cname, b.tcpRoute(s, port), &s.policy), nil, b.m.tracing)
		}
	})
	if uncached {
		return o
	}
	v, _ := s.cache.LoadOrStore(key, o)
	return v.(*builtOutbound)
}

// listener returns the outbound's listener on localPort.
func (o *builtOutbound) listener(localPort int32) *listenerv3.Listener {
	if v, ok := o.listeners.Load(localPort); ok {
		return v.(*listenerv3.Listener)
	}
	l := listener("outbound:"+localhost+":"+strconv.Itoa(int(localPort)), localhost, localPort, o.filters...)
	v, _ := o.listeners.LoadOrStore(localPort, l)
	return v.(*listenerv3.Listener)
}
