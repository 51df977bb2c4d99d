package hcm

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster"
	"github.com/trellis-mesh/trellis/internal/proxy/httpfilter"
	"github.com/trellis-mesh/trellis/internal/proxy/httpfilter/bridgefilter"
	"github.com/trellis-mesh/trellis/internal/proxy/httpfilter/cors"
	"github.com/trellis-mesh/trellis/internal/proxy/httpfilter/fault"
	"github.com/trellis-mesh/trellis/internal/proxy/httpfilter/headermutation"
	"github.com/trellis-mesh/trellis/internal/proxy/httpfilter/localratelimit"
	"github.com/trellis-mesh/trellis/internal/proxy/httpfilter/rbac"
	"github.com/trellis-mesh/trellis/internal/proxy/route"
	"github.com/trellis-mesh/trellis/internal/telemetry/accesslog"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
	"github.com/trellis-mesh/trellis/internal/telemetry/tap"
	"github.com/trellis-mesh/trellis/internal/telemetry/trace"
	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

// Codec is the downstream codec_type.
type Codec uint8

// The codec types.
const (
	CodecAuto Codec = iota
	CodecHTTP1
	CodecHTTP2
)

// Defaults, as Envoy documents them (server name is Trellis').
const (
	DefaultServerName        = "trellis"
	DefaultIdleTimeout       = time.Hour
	DefaultStreamIdleTimeout = 5 * time.Minute
	DefaultMaxStreams        = 1024
	maxHeaderBytes           = 60 << 10 // Envoy: max_request_headers_kb 60
)

// ServerSettings are the connection-level settings of a connection
// manager. A change in them needs a new Server; anything else is swapped
// in place.
type ServerSettings struct {
	Codec                 Codec
	IdleTimeout           time.Duration
	RequestTimeout        time.Duration
	RequestHeadersTimeout time.Duration
	MaxConcurrentStreams  uint32
	StreamWindow          uint32
	ConnWindow            uint32
}

// Config is one connection manager of one snapshot. It is immutable.
type Config struct {
	Listener   string
	StatPrefix string
	Server     ServerSettings

	Routes    *route.Table
	RouteOpts route.Options
	Clusters  *cluster.Set

	UseRemoteAddress          bool
	XFFTrustedHops            int
	SkipXFFAppend             bool
	GenerateRequestID         bool
	PreserveExternalRequestID bool
	ServerName                string
	serverValue               []string // {ServerName}, shared read-only
	ServerHeader              hcmv3.HttpConnectionManager_ServerHeaderTransformation
	Via                       string
	Upgrades                  map[string]bool // lower-case upgrade type → enabled
	StreamIdleTimeout         time.Duration
	// Paths are normalize_path, merge_slashes and
	// path_with_escaped_slashes_action, applied before routing.
	Paths PathOptions

	AccessLogs []*accesslog.Logger
	// chain runs the HTTP filters before the router; nil without filters.
	chain      httpfilter.Handler
	Stats      *metrics.HTTP
	RouteStats []*metrics.Route // by route.Route.ID

	// Tracer is the connection manager's tracing; nil without (then
	// requests pay nothing for it and trace headers pass untouched).
	Tracer       *trace.Tracer
	routeTracing []routeTracing // by route.Route.ID; nil without overrides

	// Tap receives finished requests while a tap is open (tap.go); nil
	// without. inbound: the listener is an inbound one ("inbound:...").
	Tap     *tap.Tap
	inbound bool
}

// Deps are what Build needs from the snapshot being built.
type Deps struct {
	Listener     string
	ListenerAddr string
	Clusters     *cluster.Set
	Metrics      *metrics.Registry
	Sinks        *accesslog.Sinks
	// Filters are the HTTP filters available to http_filters.
	Filters httpfilter.Registry
	// Tracers provides the span exporters of the tracing field; a
	// configuration with tracing is rejected without it.
	Tracers *trace.Manager
	// NodeID is the proxy's node id, recorded on spans.
	NodeID string
	// Tap is the proxy's tap (trellis tap); nil means requests are not
	// tapped.
	Tap *tap.Tap
}

// Build translates an HttpConnectionManager. Errors name fields below it.
func Build(pb *hcmv3.HttpConnectionManager, d Deps) (*Config, error) {
	c := &Config{
		Listener:          d.Listener,
		StatPrefix:        pb.GetStatPrefix(),
		Clusters:          d.Clusters,
		UseRemoteAddress:  pb.GetUseRemoteAddress().GetValue(),
		XFFTrustedHops:    int(pb.GetXffNumTrustedHops()),
		SkipXFFAppend:     pb.GetSkipXffAppend(),
		GenerateRequestID: pb.GetGenerateRequestId() == nil || pb.GetGenerateRequestId().GetValue(),
		ServerName:        DefaultServerName,
		ServerHeader:      pb.GetServerHeaderTransformation(),
		Via:               pb.GetVia(),
		StreamIdleTimeout: DefaultStreamIdleTimeout,
		Stats:             d.Metrics.HTTP(pb.GetStatPrefix()),
	}
	c.PreserveExternalRequestID = pb.GetPreserveExternalRequestId()
	c.Tap, c.inbound = d.Tap, strings.HasPrefix(d.Listener, "inbound:")
	if pb.GetServerName() != "" {
		c.ServerName = pb.GetServerName()
	}
	c.serverValue = []string{c.ServerName}
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	s := &c.Server
	switch pb.GetCodecType() {
	case hcmv3.HttpConnectionManager_AUTO:
		s.Codec = CodecAuto
	case hcmv3.HttpConnectionManager_HTTP1:
		s.Codec = CodecHTTP1
	case hcmv3.HttpConnectionManager_HTTP2:
		s.Codec = CodecHTTP2
	default:
		fail("codec_type: %v not supported", pb.GetCodecType())
	}
	s.IdleTimeout = DefaultIdleTimeout
	if t := pb.GetCommonHttpProtocolOptions().GetIdleTimeout(); t != nil {
		s.IdleTimeout = t.AsDuration()
	}
	s.RequestTimeout = pb.GetRequestTimeout().AsDuration()
	s.RequestHeadersTimeout = pb.GetRequestHeadersTimeout().AsDuration()
	if t := pb.GetStreamIdleTimeout(); t != nil {
		c.StreamIdleTimeout = t.AsDuration()
	}
	s.MaxConcurrentStreams = DefaultMaxStreams
	if h2 := pb.GetHttp2ProtocolOptions(); h2 != nil {
		if v := h2.GetMaxConcurrentStreams(); v != nil {
			s.MaxConcurrentStreams = v.GetValue()
		}
		s.StreamWindow = h2.GetInitialStreamWindowSize().GetValue()
		s.ConnWindow = h2.GetInitialConnectionWindowSize().GetValue()
	}
	if _, port, err := net.SplitHostPort(d.ListenerAddr); err == nil {
		c.RouteOpts.ListenerPort = port
	}
	paths, err := pathOptions(pb)
	if err != nil {
		errs = append(errs, err)
	}
	c.Paths = paths
	c.RouteOpts.StripAnyHostPort = pb.GetStripAnyHostPort()
	c.RouteOpts.StripMatchingHostPort = pb.GetStripMatchingHostPort()

	for i, u := range pb.GetUpgradeConfigs() {
		if u.GetUpgradeType() == "" {
			fail("upgrade_configs[%d].upgrade_type: required", i)
			continue
		}
		if strings.EqualFold(u.GetUpgradeType(), "CONNECT") {
			fail("upgrade_configs[%d].upgrade_type: CONNECT not supported", i)
			continue
		}
		if c.Upgrades == nil {
			c.Upgrades = map[string]bool{}
		}
		c.Upgrades[strings.ToLower(u.GetUpgradeType())] = u.GetEnabled() == nil || u.GetEnabled().GetValue()
	}

	filters, err := buildFilters(pb, d.Filters)
	if err != nil {
		errs = append(errs, err)
	}

	switch rs := pb.GetRouteSpecifier().(type) {
	case *hcmv3.HttpConnectionManager_RouteConfig:
		t, err := route.CompileWith(rs.RouteConfig, d.Filters.ParseOverride)
		if err != nil {
			errs = append(errs, decode.PrefixErrors("route_config", err))
		} else {
			c.Routes = t
		}
	default:
		fail("route_specifier: route_config is required (rds and scoped routes are not supported in static configuration)")
	}

	for i, al := range pb.GetAccessLog() {
		l, err := OpenAccessLog(al, d.Sinks)
		if err != nil {
			fail("access_log[%d].%v", i, err)
			continue
		}
		c.AccessLogs = append(c.AccessLogs, l)
	}
	if c.Routes != nil {
		errs = append(errs, checkClusters(c.Routes, d.Clusters)...)
	}
	if c.Tracer, c.routeTracing, err = buildTracing(pb, d); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(filters) > 0 {
		var h httpfilter.Handler = httpfilter.HandlerFunc(routerHandler)
		for i := len(filters) - 1; i >= 0; i-- {
			h = filters[i].Wrap(h)
		}
		c.chain = h
	}
	vhName := func(rt *route.Route) string {
		if rt.VirtualHost != nil {
			return rt.VirtualHost.Name
		}
		return ""
	}
	for _, rt := range c.Routes.Routes {
		c.RouteStats = append(c.RouteStats, d.Metrics.Route(c.StatPrefix, vhName(rt), rt.Name))
	}
	return c, nil
}

// checkClusters reports routes naming clusters that do not exist: Envoy's
// validate_clusters, which defaults to true for an inline route_config.
func checkClusters(t *route.Table, cs *cluster.Set) []error {
	var errs []error
	for _, rt := range t.Routes {
		names := []string{rt.Cluster}
		for _, w := range rt.Weighted {
			names = append(names, w.Name)
		}
		for _, m := range rt.Mirrors {
			names = append(names, m.Cluster)
		}
		for _, n := range names {
			if n != "" && cs.Get(n) == nil {
				errs = append(errs, fmt.Errorf("route_config: route %q of virtual host %q names cluster %q, which is not defined", rt.Name, rt.VirtualHost.Name, n))
			}
		}
	}
	return errs
}

// buildFilters builds http_filters: any number of filters the registry
// knows, then the router, which must be last (Envoy's terminal filter).
func buildFilters(pb *hcmv3.HttpConnectionManager, reg httpfilter.Registry) ([]httpfilter.Filter, error) {
	fs := pb.GetHttpFilters()
	if len(fs) == 0 {
		return nil, errors.New("http_filters: the router filter (envoy.filters.http.router) is required")
	}
	var out []httpfilter.Filter
	var errs []error
	for i, f := range fs {
		isRouter := f.GetTypedConfig().MessageIs(&routerv3.Router{}) ||
			(f.GetTypedConfig() == nil && f.GetName() == "envoy.filters.http.router")
		last := i == len(fs)-1
		switch {
		case isRouter && !last:
			errs = append(errs, fmt.Errorf("http_filters[%d]: the router must be the last filter", i))
		case isRouter:
		case last:
			errs = append(errs, fmt.Errorf("http_filters[%d]: the last filter must be the router, not %q", i, f.GetName()))
		default:
			b, ok := reg[filterType(f.GetTypedConfig())]
			if !ok {
				errs = append(errs, fmt.Errorf("http_filters[%d]: filter %q not supported", i, f.GetName()))
				continue
			}
			flt, err := b.Build(f.GetName(), f.GetTypedConfig())
			if err != nil {
				errs = append(errs, decode.PrefixErrors(fmt.Sprintf("http_filters[%d].typed_config", i), err))
				continue
			}
			out = append(out, flt)
		}
	}
	return out, errors.Join(errs...)
}

// filterType is the key of a filter's builder: its typed_config's type,
// or for an xds.type.v3.TypedStruct (Trellis's own filters) the type_url
// inside it.
func filterType(a *anypb.Any) string {
	ts := &xdstypev3.TypedStruct{}
	if !a.MessageIs(ts) || a.UnmarshalTo(ts) != nil {
		return a.GetTypeUrl()
	}
	return ts.GetTypeUrl()
}

// Filters returns the HTTP filters Trellis implements besides the router;
// m (may be nil) receives the filters' metrics and log (nil:
// slog.Default()) their debug lines.
// bridge (may be nil) collects the HTTP bridge's configuration
// (bridgefilter.Pending).
func Filters(m *metrics.Registry, log *slog.Logger, bridge *bridgefilter.Pending) httpfilter.Registry {
	return httpfilter.NewRegistry(fault.Builder{}, localratelimit.Builder{Metrics: m}, cors.Builder{}, headermutation.Builder{},
		rbac.Builder{Metrics: m, Log: log}, bridgefilter.Builder{Pending: bridge})
}

// OpenAccessLog opens the sink of an Envoy AccessLog (file, stdout, stderr).
func OpenAccessLog(al *accesslogv3.AccessLog, sinks *accesslog.Sinks) (*accesslog.Logger, error) {
	if al.GetFilter() != nil {
		return nil, errors.New("filter: not supported")
	}
	tc := al.GetTypedConfig()
	switch {
	case tc.MessageIs(&filev3.FileAccessLog{}):
		f := &filev3.FileAccessLog{}
		if err := tc.UnmarshalTo(f); err != nil {
			return nil, fmt.Errorf("typed_config: %w", err)
		}
		if f.GetPath() == "" {
			return nil, errors.New("typed_config.path: required")
		}
		return sinks.Open(f.GetPath())
	case tc.MessageIs(&streamv3.StdoutAccessLog{}):
		return sinks.Open("/dev/stdout")
	case tc.MessageIs(&streamv3.StderrAccessLog{}):
		return sinks.Open("/dev/stderr")
	}
	return nil, fmt.Errorf("typed_config: %s not supported", tc.GetTypeUrl())
}
