package translator

import (
	"fmt"
	"strconv"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	localratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

// Filter names, as Envoy spells them.
const (
	hcmFilterName       = "envoy.filters.network.http_connection_manager"
	tcpProxyFilterName  = "envoy.filters.network.tcp_proxy"
	routerFilterName    = "envoy.filters.http.router"
	faultFilterName     = "envoy.filters.http.fault"
	rateLimitFilterName = "envoy.filters.http.local_ratelimit"
	localhost           = "127.0.0.1"
)

// sidecar builds a Dataplane's listeners: one per inbound, one per
// outbound, and the outbound HTTP port.
func (b *builder) sidecar() error {
	dp := b.p.Dataplane
	self := keyOf(dp)
	b.callerNS, b.res.self, b.res.labels = self.Namespace, &self, dp.Labels
	ports := map[string]string{} // address:port → field path, to catch clashes
	claim := func(addr string, port int32, path string) error {
		k := addr + ":" + strconv.Itoa(int(port))
		if prev, dup := ports[k]; dup {
			return fmt.Errorf("%s: port %d already used by %s", path, port, prev)
		}
		ports[k] = path
		return nil
	}
	for i, in := range dp.Spec.Inbound {
		if err := claim(dp.Spec.Address, in.Port, fmt.Sprintf("spec.inbound[%d].port", i)); err != nil {
			return err
		}
		b.inbound(in)
	}
	for i, out := range dp.Spec.Outbound {
		if err := claim(localhost, out.LocalPort, fmt.Sprintf("spec.outbound[%d].localPort", i)); err != nil {
			return err
		}
		b.outbound(out)
	}
	if p := dp.Spec.OutboundHTTPPort; p != 0 {
		if err := claim(localhost, p, "spec.outboundHTTPPort"); err != nil {
			return err
		}
		b.outboundHTTP(p)
	}
	if br := dp.Spec.Bridge; br != nil {
		if err := claim(localhost, br.Port, "spec.bridge.port"); err != nil {
			return err
		}
		b.bridge(br.Port) // bridge.go
	}
	return nil
}

// inbound serves one inbound port: an HTTP connection manager (with the
// serving Service's rate limit) or a TCP proxy in front of the application
// (after the protocol filter of a nats or kafka port, messaging.go).
func (b *builder) inbound(in v1alpha1.Inbound) {
	dp := b.p.Dataplane
	sp := servicePortOf(in)
	var served *service
	var servers []*service
	for _, s := range b.m.selecting(dp.Labels) {
		if portOf(s.spec, sp) != nil {
			b.res.Services[s.key] = true
			servers = append(servers, s)
			if served == nil {
				served = s
			}
		}
	}
	proto := v1alpha1.ProtocolTCP // unknown: opaque bytes are always safe
	pol := b.m.defaults
	if served != nil {
		proto, pol = protocolOf(portOf(served.spec, sp)), served.policy
	}
	name := "inbound:" + strconv.Itoa(int(in.Port))
	b.res.Clusters = append(b.res.Clusters, inboundCluster(name, in, proto))
	key := inboundKey{in.Port, sp, served, b.traced}
	acc := b.accessOf(key, servers, proto, name)
	mk := func() *listenerv3.Filter {
		if isHTTP(proto) {
			return b.inboundHCM(name, &pol, acc)
		}
		return b.tcpProxy(name, &tcpproxyv3.TcpProxy{ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: name}}, &pol)
	}
	var filter *listenerv3.Filter
	if len(servers) > 1 { // the key names only the first: access.go
		filter = mk()
	} else {
		filter = b.m.inboundFilter(key, mk)
	}
	filters := append(acc.network(), messagingFilters(served, sp, true, filter, acc, nil)...)
	b.res.Listeners = append(b.res.Listeners, b.inboundListener("inbound:"+dp.Spec.Address+":"+strconv.Itoa(int(in.Port)), dp.Spec.Address, in.Port, proto, filters))
}

// inboundHCM is the connection manager of an HTTP inbound: acc's RBAC
// filters, pol's rate limit, then the router to the application's
// cluster, name. It normalizes paths (normalizePaths).
func (b *builder) inboundHCM(name string, pol *v1alpha1.PolicySpec, acc *access) *listenerv3.Filter {
	filters := acc.httpFilters(name)
	if rl := pol.RateLimit; rl != nil {
		filters = append(filters, rateLimitFilter(name, rl))
	}
	h := b.hcm(name, filters)
	normalizePaths(h)
	h.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name: "inbound", Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				// The caller's proxy bounds the request; the inbound
				// side adds no timeout of its own.
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: name},
					Timeout:          durationpb.New(0),
				}},
			}},
		}},
	}}
	return &listenerv3.Filter{Name: hcmFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(h)}}
}

// outbound serves one upstream on a local port. An outbound to a Service
// (or port) that does not exist gets no listener until it does.
func (b *builder) outbound(out v1alpha1.Outbound) {
	k := ServiceKey{out.Namespace, out.Service}
	if k.Namespace == "" {
		k.Namespace = b.callerNS
	}
	b.res.Services[k] = true
	s := b.m.services[k]
	if s == nil {
		return
	}
	port, ok := resolvePort(s.spec, out.Port)
	if !ok {
		return
	}
	o := b.outboundFilter(s, port)
	b.replay(o.fx)
	if o.cfg != nil && !b.routeCfg[o.cfg.Name] {
		b.routeCfg[o.cfg.Name] = true
		b.res.Routes = append(b.res.Routes, o.cfg)
	}
	b.res.Listeners = append(b.res.Listeners, b.outboundListeners(s, port, out, o)...)
}

// tcpRoute forwards to the TCPRoutes' backends (the first rule of the
// oldest route; weight 0 out of rotation) or to the Service itself.
func (b *builder) tcpRoute(s *service, port int32) *tcpproxyv3.TcpProxy {
	for _, r := range visible(s, s.tcp, port, b.callerNS) {
		b.res.routes[routeKey{"TCPRoute", v1alpha1.NamespaceOf(r), r.Name}] = true
		if len(r.Spec.Rules) == 0 {
			continue
		}
		a := b.forward(v1alpha1.NamespaceOf(r), r.Spec.Rules[0].BackendRefs)
		switch {
		case a == nil:
			continue
		case a.GetCluster() != "":
			return &tcpproxyv3.TcpProxy{ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: a.GetCluster()}}
		}
		wc := &tcpproxyv3.TcpProxy_WeightedCluster{}
		for _, c := range a.GetWeightedClusters().GetClusters() {
			wc.Clusters = append(wc.Clusters, &tcpproxyv3.TcpProxy_WeightedCluster_ClusterWeight{Name: c.Name, Weight: c.Weight.GetValue()})
		}
		return &tcpproxyv3.TcpProxy{ClusterSpecifier: &tcpproxyv3.TcpProxy_WeightedClusters{WeightedClusters: wc}}
	}
	return &tcpproxyv3.TcpProxy{ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: b.cluster(s, port)}}
}

// outboundHTTP serves every HTTP service port of the mesh on one local
// port, routed by Host.
func (b *builder) outboundHTTP(port int32) {
	b.res.httpAll = true
	o := b.m.cached(httpAllKey{b.callerNS, port, b.traced}, func() *built {
		o := &built{}
		o.fx = b.record(func(b *builder) {
			rc := "outbound-http:" + strconv.Itoa(int(port))
			cfg := &routev3.RouteConfiguration{Name: rc}
			for _, h := range b.hostNames(false) {
				b.res.Services[h.s.key] = true
				cfg.VirtualHosts = append(cfg.VirtualHosts, &routev3.VirtualHost{
					Name: ClusterName(h.s.key, h.port), Domains: h.domains, Routes: b.serviceRoutes(h.s, h.port),
				})
			}
			o.routes = []types.Resource{cfg}
			o.listeners = []types.Resource{listener("outbound-http:"+localhost+":"+strconv.Itoa(int(port)), localhost, port, b.rdsFilter(rc, rc))}
		})
		return o
	})
	b.replay(o.fx)
	b.res.Routes = append(b.res.Routes, o.routes...)
	b.res.Listeners = append(b.res.Listeners, o.listeners...)
}

// proxyless builds what grpc-go's xDS resolver asks for: for each name a
// client may dial (xds:///NAME), an API listener NAME whose route
// configuration has a virtual host for NAME.
func (b *builder) proxyless() {
	b.res.httpAll = true
	o := b.m.cached(proxylessKey{b.callerNS}, func() *built {
		o := &built{}
		o.fx = b.record(func(b *builder) {
			for _, h := range b.hostNames(true) {
				b.res.Services[h.s.key] = true
				cname := ClusterName(h.s.key, h.port)
				rc := "outbound:" + cname
				o.routes = append(o.routes, &routev3.RouteConfiguration{Name: rc, VirtualHosts: []*routev3.VirtualHost{{
					Name: cname, Domains: h.domains, Routes: b.serviceRoutes(h.s, h.port),
				}}})
				for _, d := range h.domains {
					h := &hcmv3.HttpConnectionManager{
						HttpFilters: outboundFilters(),
						RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
							ConfigSource: adsSource(), RouteConfigName: rc,
						}},
					}
					o.listeners = append(o.listeners, &listenerv3.Listener{
						Name: d, ApiListener: &listenerv3.ApiListener{ApiListener: mustAny(h)},
					})
				}
			}
		})
		return o
	})
	b.replay(o.fx)
	b.res.Routes = append(b.res.Routes, o.routes...)
	b.res.Listeners = append(b.res.Listeners, o.listeners...)
}

func listener(name, addr string, port int32, fs ...*listenerv3.Filter) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:         name,
		Address:      socketAddress(addr, port),
		FilterChains: []*listenerv3.FilterChain{{Filters: fs}},
	}
}

func socketAddress(addr string, port int32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
	}}}
}

func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

// outboundFilters is the caller-side HTTP filter chain: fault injection
// (a no-op unless a route configures it, so the listener does not change
// when a fault policy comes and goes), then the router.
func outboundFilters() []*hcmv3.HttpFilter {
	return []*hcmv3.HttpFilter{
		{Name: faultFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&faultv3.HTTPFault{})}},
		routerFilter(),
	}
}

func routerFilter() *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: routerFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})}}
}

// hcm returns a connection manager with filters, then the router, and
// the mesh's access log and tracing.
func (b *builder) hcm(statPrefix string, filters []*hcmv3.HttpFilter) *hcmv3.HttpConnectionManager {
	return &hcmv3.HttpConnectionManager{
		StatPrefix:  statPrefix,
		HttpFilters: append(filters, routerFilter()),
		AccessLog:   b.accessLog(),
		Tracing:     b.tracing(),
	}
}

// rdsFilter is an outbound connection manager reading route configuration
// rc over ADS.
func (b *builder) rdsFilter(statPrefix, rc string) *listenerv3.Filter {
	h := b.hcm(statPrefix, outboundFilters()[:1])
	h.RouteSpecifier = &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: adsSource(), RouteConfigName: rc}}
	return &listenerv3.Filter{Name: hcmFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(h)}}
}

func (b *builder) tcpProxy(statPrefix string, t *tcpproxyv3.TcpProxy, pol *v1alpha1.PolicySpec) *listenerv3.Filter {
	t.StatPrefix = statPrefix
	t.AccessLog = b.accessLog()
	if pol.Timeouts != nil && pol.Timeouts.Idle != nil {
		t.IdleTimeout = pbDur(pol.Timeouts.Idle)
	}
	return &listenerv3.Filter{Name: tcpProxyFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t)}}
}

// accessLog is the Mesh's access log: stdout, stderr or a file.
func (b *builder) accessLog() []*accesslogv3.AccessLog {
	al := b.m.accessLog
	if al == nil || al.Path == "" {
		return nil
	}
	var l *accesslogv3.AccessLog
	switch al.Path {
	case "/dev/stdout":
		l = &accesslogv3.AccessLog{Name: "envoy.access_loggers.stdout", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(&streamv3.StdoutAccessLog{})}}
	case "/dev/stderr":
		l = &accesslogv3.AccessLog{Name: "envoy.access_loggers.stderr", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(&streamv3.StderrAccessLog{})}}
	default:
		l = &accesslogv3.AccessLog{Name: "envoy.access_loggers.file", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(&filev3.FileAccessLog{Path: al.Path})}}
	}
	return []*accesslogv3.AccessLog{l}
}

// rateLimitFilter is a RateLimit as the HTTP local rate limit filter,
// enforced on every request.
func rateLimitFilter(statPrefix string, rl *v1alpha1.RateLimit) *hcmv3.HttpFilter {
	burst := rl.Requests
	if rl.Burst != nil {
		burst = *rl.Burst
	}
	all := &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}}
	cfg := &localratelimitv3.LocalRateLimit{
		StatPrefix: statPrefix,
		TokenBucket: &typev3.TokenBucket{
			MaxTokens: burst, TokensPerFill: wrapperspb.UInt32(rl.Requests), FillInterval: durationpb.New(rl.Interval.Duration),
		},
		FilterEnabled: all, FilterEnforced: all,
	}
	return &hcmv3.HttpFilter{Name: rateLimitFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(cfg)}}
}
