package hcm

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tracingv3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster/lb"
	"github.com/trellis-mesh/trellis/internal/proxy/route"
	"github.com/trellis-mesh/trellis/internal/telemetry/trace"
)

// routeTracing is a route's tracing override (Envoy's Route.tracing).
type routeTracing struct {
	sampling *trace.Sampling // nil: the connection manager's
	tags     []trace.Tag
}

// buildTracing translates the connection manager's tracing field and the
// routes' tracing overrides. It returns nil without tracing.
func buildTracing(pb *hcmv3.HttpConnectionManager, d Deps) (*trace.Tracer, []routeTracing, error) {
	tr := pb.GetTracing()
	if tr == nil {
		return nil, nil, nil
	}
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf("tracing."+format, a...)) }
	o := trace.Options{NodeID: d.NodeID, SpawnUpstream: tr.GetSpawnUpstreamSpan().GetValue(), Sampling: trace.FullSampling}
	var err error
	if o.Sampling.Client, err = percent(tr.GetClientSampling()); err != nil {
		fail("client_sampling: %v", err)
	}
	if o.Sampling.Random, err = percent(tr.GetRandomSampling()); err != nil {
		fail("random_sampling: %v", err)
	}
	if o.Sampling.Overall, err = percent(tr.GetOverallSampling()); err != nil {
		fail("overall_sampling: %v", err)
	}
	if v := tr.GetMaxPathTagLength(); v != nil {
		o.MaxPathLength = int(v.GetValue())
	}
	if o.Tags, err = customTags(tr.GetCustomTags()); err != nil {
		errs = append(errs, fmt.Errorf("tracing.%w", err))
	}
	popts, err := otelProvider(tr.GetProvider(), d)
	if err != nil {
		errs = append(errs, fmt.Errorf("tracing.provider%w", err))
	}
	routes, err := routeOverrides(pb.GetRouteConfig())
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	if d.Tracers == nil {
		return nil, nil, errors.New("tracing: this proxy has no tracing manager")
	}
	popts.NodeID = d.NodeID
	o.Provider = d.Tracers.Provider(popts)
	return trace.New(o), routes, nil
}

// otelProvider reads envoy.tracers.opentelemetry's OpenTelemetryConfig.
// The collector is the first host of the named cluster, dialed in
// plaintext; the address is read when the configuration is built (for a
// DNS cluster not resolved yet, its configured name).
func otelProvider(p *tracev3.Tracing_Http, d Deps) (trace.ProviderOptions, error) {
	var o trace.ProviderOptions
	if p == nil {
		return o, errors.New(": required (envoy.tracers.opentelemetry)")
	}
	cfg := &tracev3.OpenTelemetryConfig{}
	if !p.GetTypedConfig().MessageIs(cfg) {
		return o, fmt.Errorf(".typed_config: %q not supported (only envoy.config.trace.v3.OpenTelemetryConfig)", p.GetTypedConfig().GetTypeUrl())
	}
	if err := p.GetTypedConfig().UnmarshalTo(cfg); err != nil {
		return o, fmt.Errorf(".typed_config: %w", err)
	}
	o.ServiceName = cfg.GetServiceName()
	name := cfg.GetGrpcService().GetEnvoyGrpc().GetClusterName()
	const field = ".typed_config.grpc_service.envoy_grpc.cluster_name"
	if name == "" {
		return o, errors.New(field + ": required")
	}
	cl := d.Clusters.Get(name)
	if cl == nil {
		return o, fmt.Errorf("%s: cluster %q is not defined", field, name)
	}
	if cl.Scheme == "https" {
		return o, fmt.Errorf("%s: cluster %q has an upstream TLS context; the OTLP exporter connects in plaintext", field, name)
	}
	if hosts := cl.Hosts(); len(hosts) > 0 {
		o.Endpoint = hosts[0].Host.Address
		return o, nil
	}
	// A DNS cluster that has not resolved (yet): the exporter resolves the
	// name itself and retries, dropping spans meanwhile, rather than the
	// whole configuration being refused for a collector that is away.
	addrs := cl.ConfiguredAddresses()
	if len(addrs) == 0 {
		return o, fmt.Errorf("%s: cluster %q has no endpoint", field, name)
	}
	o.Endpoint = addrs[0]
	return o, nil
}

// percent converts an Envoy Percent (default 100%) to parts per million.
func percent(p *typev3.Percent) (uint32, error) {
	if p == nil {
		return trace.Million, nil
	}
	v := p.GetValue()
	if math.IsNaN(v) || v < 0 || v > 100 {
		return 0, fmt.Errorf("value %v is not within [0, 100]", v)
	}
	return uint32(math.Round(v * trace.Million / 100)), nil
}

// fraction converts a FractionalPercent (default 100%) to parts per
// million.
func fraction(f *typev3.FractionalPercent) uint32 {
	if f == nil {
		return trace.Million
	}
	n := uint64(f.GetNumerator())
	switch f.GetDenominator() {
	case typev3.FractionalPercent_HUNDRED:
		n *= 10_000
	case typev3.FractionalPercent_TEN_THOUSAND:
		n *= 100
	}
	return uint32(min(n, trace.Million))
}

// customTags translates custom_tags: literal, environment and
// request_header (metadata tags are not supported).
func customTags(cts []*tracingv3.CustomTag) ([]trace.Tag, error) {
	var tags []trace.Tag
	var errs []error
	for i, ct := range cts {
		if ct.GetTag() == "" {
			errs = append(errs, fmt.Errorf("custom_tags[%d].tag: required", i))
			continue
		}
		switch ty := ct.GetType().(type) {
		case *tracingv3.CustomTag_Literal_:
			tags = append(tags, trace.LiteralTag(ct.GetTag(), ty.Literal.GetValue()))
		case *tracingv3.CustomTag_Environment_:
			tags = append(tags, trace.EnvironmentTag(ct.GetTag(), ty.Environment.GetName(), ty.Environment.GetDefaultValue()))
		case *tracingv3.CustomTag_RequestHeader:
			if ty.RequestHeader.GetName() == "" {
				errs = append(errs, fmt.Errorf("custom_tags[%d].request_header.name: required", i))
				continue
			}
			tags = append(tags, trace.HeaderTag(ct.GetTag(), ty.RequestHeader.GetName(), ty.RequestHeader.GetDefaultValue()))
		default:
			errs = append(errs, fmt.Errorf("custom_tags[%d]: only literal, environment and request_header tags are supported", i))
		}
	}
	return tags, errors.Join(errs...)
}

// routeOverrides reads each route's tracing, indexed like route.Table's
// Routes (virtual hosts, then routes, in order). As in Envoy, a route's
// tracing replaces all three percentages (each defaulting to 100%).
func routeOverrides(rc *routev3.RouteConfiguration) ([]routeTracing, error) {
	var out []routeTracing
	var errs []error
	found := false
	for i, vh := range rc.GetVirtualHosts() {
		for j, r := range vh.GetRoutes() {
			var rt routeTracing
			if t := r.GetTracing(); t != nil {
				found = true
				rt.sampling = &trace.Sampling{Client: fraction(t.GetClientSampling()), Random: fraction(t.GetRandomSampling()),
					Overall: fraction(t.GetOverallSampling())}
				tags, err := customTags(t.GetCustomTags())
				if err != nil {
					errs = append(errs, fmt.Errorf("route_config.virtual_hosts[%d].routes[%d].tracing.%w", i, j, err))
				}
				rt.tags = tags
			}
			out = append(out, rt)
		}
	}
	if !found {
		return nil, errors.Join(errs...)
	}
	return out, errors.Join(errs...)
}

// startTrace starts the request's server span once its route is known.
func (s *stream) startTrace(rt *route.Route) {
	c, r := s.cfg, s.r
	req := trace.Request{
		Header: r.Header, Name: "ingress", Method: s.method, Path: r.URL.Path, Authority: s.authority,
		Proto: r.Proto, Peer: r.RemoteAddr, RequestID: s.requestID, UserAgent: s.userAgent, Start: s.start,
	}
	if _, ok := r.Header["X-Envoy-Force-Trace"]; ok {
		req.Internal = isInternal(s.remote)
	}
	if rt != nil {
		if rt.Name != "" {
			req.Name = rt.Name
		}
		if rt.ID < len(c.routeTracing) {
			o := &c.routeTracing[rt.ID]
			req.Sampling, req.Tags = o.sampling, o.tags
		}
	}
	s.span = c.Tracer.Start(&req)
}

// startAttempt starts the span of one upstream attempt and writes its
// context into the upstream request's headers.
func (s *stream) startAttempt(out *http.Request, cluster string, host *lb.Host) trace.ClientSpan {
	cs := s.span.StartClient(&trace.Upstream{Cluster: cluster, Host: host.Address, Authority: out.Host,
		Method: out.Method, Path: out.URL.Path, Start: time.Now()})
	cs.Inject(out.Header)
	return cs
}

// endTrace finishes the server span of a recorded request.
func (s *stream) endTrace() {
	s.span.End(&trace.End{Status: s.status, Flags: s.flags.String(), Cluster: s.cluster,
		UpstreamHost: s.upstreamHost, Time: time.Now()})
}

// isInternal reports whether a trusted client address ("ip" or
// "ip:port") is loopback or private: Envoy honours x-envoy-force-trace
// only from internal callers.
func isInternal(remote string) bool {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		remote = h
	}
	ip, err := netip.ParseAddr(remote)
	return err == nil && (ip.IsLoopback() || ip.IsPrivate())
}
