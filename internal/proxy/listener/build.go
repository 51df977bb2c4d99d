package listener

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	httpinspv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	tlsinspv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	localratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/local_ratelimit/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster"
	"github.com/trellis-mesh/trellis/internal/proxy/hcm"
	"github.com/trellis-mesh/trellis/internal/proxy/httpfilter/bridgefilter"
	"github.com/trellis-mesh/trellis/internal/proxy/kafkabroker"
	"github.com/trellis-mesh/trellis/internal/proxy/natsfilter"
	"github.com/trellis-mesh/trellis/internal/proxy/netrbac"
	"github.com/trellis-mesh/trellis/internal/proxy/ratelimit"
	"github.com/trellis-mesh/trellis/internal/proxy/tcp"
	"github.com/trellis-mesh/trellis/internal/proxy/tlsx"
	"github.com/trellis-mesh/trellis/internal/telemetry/accesslog"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
	"github.com/trellis-mesh/trellis/internal/telemetry/tap"
	"github.com/trellis-mesh/trellis/internal/telemetry/trace"
	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

// DefaultFiltersTimeout is Envoy's listener_filters_timeout default.
const DefaultFiltersTimeout = 15 * time.Second

// Listener is one listener of a snapshot.
type Listener struct {
	Name    string
	Address string // "ip:port"

	chains         []*Chain
	defaultChain   *Chain
	inspectTLS     bool
	inspectHTTP    bool
	filtersTimeout time.Duration
}

// Chain is one filter chain.
type Chain struct {
	Name  string
	key   string // identifies the chain across snapshots
	match chainMatch
	TLS   *tls.Config
	HCM   *hcm.Config
	TCP   *tcp.Proxy

	// kafka is the kafka_broker filter (with its kafka_policy), if any.
	kafka *kafkabroker.Filter

	server *hcm.Server // set by the Manager
	limits []limiter   // local_ratelimit filters, in order
	nats   []*natsfilter.Filter
	rbac   []*netrbac.Filter // network RBAC filters, in order
}

// limiter is a local_ratelimit network filter with its rejection counter.
type limiter struct {
	rl       *ratelimit.Network
	rejected interface{ Inc() }
}

type chainMatch struct {
	port        uint32
	serverNames []string
	transport   string
	alpn        []string
}

// Deps are what Build needs from the snapshot being built.
type Deps struct {
	Clusters *cluster.Set
	Secrets  tlsx.Secrets
	Metrics  *metrics.Registry
	Sinks    *accesslog.Sinks

	// Tracers and NodeID serve connection managers' tracing.
	Tracers *trace.Manager
	NodeID  string
	// Tap is the proxy's tap, handed to connection managers; nil means
	// none.
	Tap *tap.Tap
	// Bridge collects the HTTP bridge filters' configuration of this
	// build (bridgefilter.Pending); nil: they are checked only.
	Bridge *bridgefilter.Pending
	// Log receives filters' debug lines (RBAC shadow decisions); nil
	// means slog.Default().
	Log *slog.Logger
}

// Build translates a Listener. Errors name fields below it.
func Build(pl *listenerv3.Listener, d Deps) (*Listener, error) {
	l := &Listener{Name: pl.GetName(), filtersTimeout: DefaultFiltersTimeout}
	var errs []error
	sa := pl.GetAddress().GetSocketAddress()
	if sa == nil {
		errs = append(errs, errors.New("address.socket_address: required"))
	} else {
		l.Address = net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue())))
	}
	if t := pl.GetListenerFiltersTimeout(); t != nil {
		l.filtersTimeout = t.AsDuration()
	}
	for i, lf := range pl.GetListenerFilters() {
		switch tc := lf.GetTypedConfig(); {
		case tc.MessageIs(&tlsinspv3.TlsInspector{}):
			l.inspectTLS = true
		case tc.MessageIs(&httpinspv3.HttpInspector{}):
			l.inspectHTTP = true
		default:
			errs = append(errs, fmt.Errorf("listener_filters[%d]: %q not supported", i, lf.GetName()))
		}
	}
	seen := map[string]int{}
	for i, fc := range pl.GetFilterChains() {
		c, err := buildChain(fc, l, d, fmt.Sprintf("filter_chains[%d]", i), i)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		k := c.match.String()
		if j, dup := seen[k]; dup {
			errs = append(errs, fmt.Errorf("filter_chains[%d].filter_chain_match: same match as filter_chains[%d] (%s)", i, j, k))
			continue
		}
		seen[k] = i
		l.chains = append(l.chains, c)
	}
	if dc := pl.GetDefaultFilterChain(); dc != nil {
		c, err := buildChain(dc, l, d, "default_filter_chain", -1)
		if err != nil {
			errs = append(errs, err)
		} else {
			l.defaultChain = c
		}
	}
	if len(l.chains) == 0 && l.defaultChain == nil && len(errs) == 0 {
		errs = append(errs, errors.New("filter_chains: at least one filter chain is required"))
	}
	for _, c := range l.chains {
		// Envoy injects the TLS inspector when a chain matches on what only
		// a ClientHello tells.
		if len(c.match.serverNames) > 0 || c.match.transport == "tls" || (len(c.match.alpn) > 0 && !l.inspectHTTP) {
			l.inspectTLS = true
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return l, nil
}

func (m chainMatch) String() string {
	return fmt.Sprintf("port=%d server_names=%v transport=%q alpn=%v", m.port, m.serverNames, m.transport, m.alpn)
}

func buildChain(fc *listenerv3.FilterChain, l *Listener, d Deps, path string, index int) (*Chain, error) {
	c := &Chain{Name: fc.GetName()}
	c.key = fc.GetName()
	if c.key == "" {
		c.key = "#" + strconv.Itoa(index)
	}
	m := fc.GetFilterChainMatch()
	c.match = chainMatch{
		port:        m.GetDestinationPort().GetValue(),
		serverNames: lower(m.GetServerNames()),
		transport:   m.GetTransportProtocol(),
		alpn:        m.GetApplicationProtocols(),
	}
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(path+"."+format, a...)) }
	if ts := fc.GetTransportSocket(); ts != nil {
		ctx := &tlsv3.DownstreamTlsContext{}
		if !ts.GetTypedConfig().MessageIs(ctx) {
			fail("transport_socket.typed_config: %s not supported", ts.GetTypedConfig().GetTypeUrl())
		} else if err := ts.GetTypedConfig().UnmarshalTo(ctx); err != nil {
			fail("transport_socket.typed_config: %v", err)
		} else if c.TLS, err = tlsx.ServerConfig(ctx, d.Secrets); err != nil {
			fail("transport_socket.typed_config.%v", err)
		}
	}
	fs := fc.GetFilters()
	if len(fs) == 0 {
		fail("filters: a terminal network filter (http_connection_manager or tcp_proxy) is required")
		return nil, errors.Join(errs...)
	}
	var kcfg *kafkabroker.Config
	for i, f := range fs[:len(fs)-1] {
		if ok, err := buildRBAC(c, f.GetTypedConfig(), d); ok {
			if err != nil {
				errs = append(errs, decode.PrefixErrors(fmt.Sprintf("%s.filters[%d].typed_config", path, i), err))
			}
			continue
		}
		if ok, err := buildKafka(f.GetTypedConfig(), &kcfg); ok {
			if err != nil {
				errs = append(errs, decode.PrefixErrors(fmt.Sprintf("%s.filters[%d]", path, i), err))
			}
			continue
		}
		if ts := (&xdstypev3.TypedStruct{}); f.GetTypedConfig().MessageIs(ts) {
			if err := buildNATS(c, f.GetTypedConfig(), ts, d); err != nil {
				errs = append(errs, decode.PrefixErrors(fmt.Sprintf("%s.filters[%d].typed_config", path, i), err))
			}
			continue
		}
		pb := &localratelimitv3.LocalRateLimit{}
		if !f.GetTypedConfig().MessageIs(pb) {
			fail("filters[%d]: network filter %q not supported before the terminal filter (only local_ratelimit and %s)", i, f.GetName(), natsfilter.TypeURL)
			continue
		}
		if err := f.GetTypedConfig().UnmarshalTo(pb); err != nil {
			fail("filters[%d].typed_config: %v", i, err)
			continue
		}
		rl, err := ratelimit.NewNetwork(pb)
		if err != nil {
			fail("filters[%d].typed_config.%v", i, err)
			continue
		}
		rl.Stats = d.Metrics.RateLimit(metrics.RateLimitNetwork, rl.StatPrefix)
		c.limits = append(c.limits, limiter{rl: rl, rejected: d.Metrics.NetworkRateLimited(rl.StatPrefix)})
	}
	last := len(fs) - 1
	f := fs[last]
	switch tc := f.GetTypedConfig(); {
	case tc.MessageIs(&hcmv3.HttpConnectionManager{}):
		pb := &hcmv3.HttpConnectionManager{}
		if err := tc.UnmarshalTo(pb); err != nil {
			fail("filters[%d].typed_config: %v", last, err)
			break
		}
		cfg, err := hcm.Build(pb, hcm.Deps{Tracers: d.Tracers, NodeID: d.NodeID, Tap: d.Tap, Listener: l.Name, ListenerAddr: l.Address, Clusters: d.Clusters, Metrics: d.Metrics, Sinks: d.Sinks, Filters: hcm.Filters(d.Metrics, d.Log, d.Bridge)})
		if err != nil {
			errs = append(errs, decode.PrefixErrors(fmt.Sprintf("%s.filters[%d].typed_config", path, last), err))
			break
		}
		c.HCM = cfg
	case tc.MessageIs(&tcpv3.TcpProxy{}):
		pb := &tcpv3.TcpProxy{}
		if err := tc.UnmarshalTo(pb); err != nil {
			fail("filters[%d].typed_config: %v", last, err)
			break
		}
		p, err := tcp.Build(pb, tcp.Deps{Listener: l.Name, Clusters: d.Clusters, Metrics: d.Metrics,
			OpenLog: func(i int) (*accesslog.Logger, error) { return hcm.OpenAccessLog(pb.GetAccessLog()[i], d.Sinks) }})
		if err != nil {
			errs = append(errs, decode.PrefixErrors(fmt.Sprintf("%s.filters[%d].typed_config", path, last), err))
			break
		}
		c.TCP = p
	case tc.MessageIs(&xdstypev3.TypedStruct{}):
		fail("filters[%d]: %s is not a terminal filter (put tcp_proxy after it)", last, f.GetName())
	default:
		fail("filters[%d]: network filter %q not supported", last, f.GetName())
	}
	if kcfg != nil {
		if c.TCP == nil {
			fail("filters[%d]: kafka_broker needs tcp_proxy as the terminal filter", last)
		} else {
			c.kafka = kafkabroker.New(kcfg, d.Metrics)
		}
	}
	if len(c.nats) > 0 && c.HCM != nil {
		fail("filters: the nats filter needs tcp_proxy as the terminal filter")
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// buildNATS adds the nats filter configured by a TypedStruct to c.
func buildNATS(c *Chain, a *anypb.Any, ts *xdstypev3.TypedStruct, d Deps) error {
	if err := a.UnmarshalTo(ts); err != nil {
		return fmt.Errorf("value: %w", err)
	}
	if ts.GetTypeUrl() != natsfilter.TypeURL {
		return fmt.Errorf("type_url: %q not supported (Trellis network filters: %s)", ts.GetTypeUrl(), natsfilter.TypeURL)
	}
	cfg, err := natsfilter.Parse(ts)
	if err != nil {
		return err
	}
	c.nats = append(c.nats, natsfilter.New(cfg, d.Metrics.NATS(cfg.StatPrefix)))
	return nil
}

func lower(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToLower(s)
	}
	return out
}
