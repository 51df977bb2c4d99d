package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

	"google.golang.org/protobuf/proto"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster/circuit"
	"github.com/trellis-mesh/trellis/internal/proxy/cluster/health"
	"github.com/trellis-mesh/trellis/internal/proxy/cluster/lb"
	"github.com/trellis-mesh/trellis/internal/proxy/cluster/outlier"
	"github.com/trellis-mesh/trellis/internal/proxy/tlsx"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

// Envoy's defaults.
const (
	DefaultConnectTimeout = 5 * time.Second
	DefaultDNSRefresh     = 5 * time.Second
	DefaultIdleTimeout    = time.Hour
)

const httpOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

func (m *Manager) build(pc *clusterv3.Cluster, secrets tlsx.Secrets) (*Cluster, error) {
	c := &Cluster{Name: pc.GetName(), ConnectTimeout: DefaultConnectTimeout, Scheme: "http", mgr: m}
	c.overprovisioning, c.panicThreshold = DefaultOverprovisioning, DefaultPanicThreshold
	if op := pc.GetLoadAssignment().GetPolicy().GetOverprovisioningFactor(); op != nil {
		c.overprovisioning = op.GetValue()
	}
	if pt := pc.GetCommonLbConfig().GetHealthyPanicThreshold(); pt != nil {
		c.panicThreshold = uint32(pt.GetValue())
	}
	if t := pc.GetConnectTimeout(); t != nil {
		c.ConnectTimeout = t.AsDuration()
	}
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	switch pc.GetType() {
	case clusterv3.Cluster_STATIC:
		c.Kind = Static
	case clusterv3.Cluster_STRICT_DNS:
		c.Kind = StrictDNS
	case clusterv3.Cluster_LOGICAL_DNS:
		c.Kind = LogicalDNS
	default:
		fail("type: %v not supported (STATIC, STRICT_DNS, LOGICAL_DNS)", pc.GetType())
	}
	if pc.GetClusterDiscoveryType() == nil {
		c.Kind = Static // Envoy's default type is STATIC
	}
	var err error
	if c.policy, err = policyFor(pc); err != nil {
		errs = append(errs, err)
	}
	if pc.GetCommonLbConfig().GetLocalityWeightedLbConfig() != nil {
		c.localityLB = true
		// A hashing policy maps a request to one host across the whole
		// priority; choosing a locality at random first would undo that.
		if lp := pc.GetLbPolicy(); pc.GetLoadBalancingPolicy() == nil && (lp == clusterv3.Cluster_RING_HASH || lp == clusterv3.Cluster_MAGLEV) {
			fail("common_lb_config.locality_weighted_lb_config: not supported with lb_policy %v", lp)
		}
	}
	if thresholds, err := circuit.ParseConfig(pc.GetCircuitBreakers()); err != nil {
		errs = append(errs, decode.PrefixErrors("circuit_breakers", err))
	} else {
		c.thresholds = thresholds
		c.breakers = m.breakersFor(c.Name, thresholds)
	}
	if od := pc.GetOutlierDetection(); od != nil {
		if c.outlierCfg, err = outlier.ParseConfig(od); err != nil {
			errs = append(errs, decode.PrefixErrors("outlier_detection", err))
		} else {
			c.outlier = m.detectorFor(c.Name, c.outlierCfg)
		}
	}

	tc := transportConfig{
		connectTimeout: c.ConnectTimeout,
		idleTimeout:    DefaultIdleTimeout,
		bufferLimit:    int(pc.GetPerConnectionBufferLimitBytes().GetValue()),
		protocol:       protoHTTP1,
	}
	if ts := pc.GetTransportSocket(); ts != nil {
		up := &tlsv3.UpstreamTlsContext{}
		if ts.GetTypedConfig().MessageIs(up) {
			if err := ts.GetTypedConfig().UnmarshalTo(up); err != nil {
				fail("transport_socket.typed_config: %v", err)
			} else if tc.tls, err = tlsx.ClientConfig(up, secrets); err != nil {
				fail("transport_socket.typed_config.%v", err)
			}
			key, _ := proto.MarshalOptions{Deterministic: true}.Marshal(up)
			tc.tlsKey = string(key) + secretsKey(up.GetCommonTlsContext(), secrets)
			c.Scheme = "https"
		} else {
			fail("transport_socket.typed_config: %s not supported", ts.GetTypedConfig().GetTypeUrl())
		}
	}
	for k, v := range pc.GetTypedExtensionProtocolOptions() {
		if k != httpOptionsKey {
			fail("typed_extension_protocol_options[%q]: not supported", k)
			continue
		}
		opts := &httpv3.HttpProtocolOptions{}
		if err := v.UnmarshalTo(opts); err != nil {
			fail("typed_extension_protocol_options[%q]: %v", k, err)
			continue
		}
		if err := tc.applyHTTPOptions(opts); err != nil {
			fail("typed_extension_protocol_options[%q].%v", k, err)
		}
	}
	c.pools = m.poolsFor(c.Name, tc)
	_, c.observeLatency = c.policy.(interface{ ObservesLatency() })
	if hcs := pc.GetHealthChecks(); len(hcs) > 0 {
		if c.healthCfg, err = health.ParseConfig(hcs); err != nil {
			errs = append(errs, err) // paths already start with health_checks[i]
		} else {
			// Health checks connect like requests (TLS included) but do
			// not count against the circuit breakers.
			d := newDialer(tc, protoHTTP1, func() *metrics.Cluster { return m.currentStats(c.Name) }, nil, nil)
			dial := d.dial()
			c.health = m.checkerFor(c.Name, c.healthCfg, func(ctx context.Context, addr string) (net.Conn, error) {
				return dial(ctx, "tcp", addr)
			})
		}
	}

	if err := c.buildEndpoints(pc); err != nil {
		errs = append(errs, err)
	}
	if c.Kind != Static {
		c.dns = &dnsConfig{refresh: DefaultDNSRefresh, family: pc.GetDnsLookupFamily()}
		//lint:ignore SA1019 Envoy still honours this deprecated field; so does Trellis.
		if r := pc.GetDnsRefreshRate(); r != nil {
			c.dns.refresh = r.AsDuration()
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

func (tc *transportConfig) applyHTTPOptions(o *httpv3.HttpProtocolOptions) error {
	if cp := o.GetCommonHttpProtocolOptions(); cp != nil && cp.GetIdleTimeout() != nil {
		tc.idleTimeout = cp.GetIdleTimeout().AsDuration()
	}
	var h2 *corev3.Http2ProtocolOptions
	switch p := o.GetUpstreamProtocolOptions().(type) {
	case *httpv3.HttpProtocolOptions_ExplicitHttpConfig_:
		if h2 = p.ExplicitHttpConfig.GetHttp2ProtocolOptions(); h2 != nil {
			tc.protocol = protoHTTP2
		} else {
			tc.protocol = protoHTTP1
		}
	case *httpv3.HttpProtocolOptions_AutoConfig:
		tc.protocol, h2 = protoAuto, p.AutoConfig.GetHttp2ProtocolOptions()
	case *httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig:
		tc.protocol, h2 = protoDownstream, p.UseDownstreamProtocolConfig.GetHttp2ProtocolOptions()
	case nil:
	default:
		return fmt.Errorf("upstream_protocol_options %T: not supported", p)
	}
	if h2 != nil {
		if h2.GetMaxConcurrentStreams() != nil {
			return errors.New("http2_protocol_options.max_concurrent_streams: not supported on clusters (the upstream server's limit applies)")
		}
		tc.h2StreamWindow = int32(h2.GetInitialStreamWindowSize().GetValue())
		tc.h2ConnWindow = int32(h2.GetInitialConnectionWindowSize().GetValue())
	}
	return nil
}

// PeakEWMATypeURL names Trellis' peak-EWMA balancer in a cluster's
// load_balancing_policy, as the type_url of an xds.type.v3.TypedStruct.
const PeakEWMATypeURL = "type.googleapis.com/trellis.lb.v1.PeakEwma"

func policyFor(pc *clusterv3.Cluster) (lb.Policy, error) {
	if lbp := pc.GetLoadBalancingPolicy(); lbp != nil {
		return extensionPolicy(lbp)
	}
	switch pc.GetLbPolicy() {
	case clusterv3.Cluster_ROUND_ROBIN:
		return lb.RoundRobin(), nil
	case clusterv3.Cluster_LEAST_REQUEST:
		lc := pc.GetLeastRequestLbConfig()
		bias := 1.0
		if b := lc.GetActiveRequestBias(); b != nil {
			bias = b.GetDefaultValue()
		}
		return lb.LeastRequest(lc.GetChoiceCount().GetValue(), bias), nil
	case clusterv3.Cluster_RANDOM:
		return lb.Random(), nil
	case clusterv3.Cluster_RING_HASH:
		rc := pc.GetRingHashLbConfig()
		if rc.GetHashFunction() != clusterv3.Cluster_RingHashLbConfig_XX_HASH {
			return nil, errors.New("ring_hash_lb_config.hash_function: only XX_HASH is supported")
		}
		minSize, maxSize := rc.GetMinimumRingSize().GetValue(), rc.GetMaximumRingSize().GetValue()
		if err := lb.ValidateRingHash(minSize, maxSize); err != nil {
			return nil, fmt.Errorf("ring_hash_lb_config.%w", err)
		}
		return lb.RingHash(minSize, maxSize), nil
	case clusterv3.Cluster_MAGLEV:
		size := pc.GetMaglevLbConfig().GetTableSize().GetValue()
		if err := lb.ValidateMaglev(size); err != nil {
			return nil, fmt.Errorf("maglev_lb_config.%w", err)
		}
		return lb.Maglev(size), nil
	}
	return nil, fmt.Errorf("lb_policy: %v not supported", pc.GetLbPolicy())
}

func (c *Cluster) buildEndpoints(pc *clusterv3.Cluster) error {
	var errs []error
	la := pc.GetLoadAssignment()
	type prioLoc struct {
		priority uint32
		locality string
	}
	seen := map[prioLoc]int{}
	for i, le := range la.GetEndpoints() {
		loc := le.GetLocality()
		locName := loc.GetRegion() + "/" + loc.GetZone() + "/" + loc.GetSubZone()
		if loc == nil {
			locName = ""
		}
		if c.localityLB {
			// Each locality of a priority has one weight.
			k := prioLoc{le.GetPriority(), locName}
			if j, dup := seen[k]; dup {
				errs = append(errs, fmt.Errorf("load_assignment.endpoints[%d].locality: %q at priority %d is already endpoints[%d] (locality-weighted load balancing needs one entry per locality)", i, locName, k.priority, j))
				continue
			}
			seen[k] = i
		}
		for j, e := range le.GetLbEndpoints() {
			path := fmt.Sprintf("load_assignment.endpoints[%d].lb_endpoints[%d]", i, j)
			switch e.GetHealthStatus() {
			case corev3.HealthStatus_UNHEALTHY, corev3.HealthStatus_DRAINING, corev3.HealthStatus_TIMEOUT:
				continue // Envoy: such hosts receive no traffic
			}
			sa := e.GetEndpoint().GetAddress().GetSocketAddress()
			if sa == nil {
				errs = append(errs, fmt.Errorf("%s.endpoint.address.socket_address: required", path))
				continue
			}
			if c.Kind == Static && net.ParseIP(sa.GetAddress()) == nil {
				errs = append(errs, fmt.Errorf("%s.endpoint.address.socket_address.address: %q is not an IP address (a STATIC cluster needs IPs; use STRICT_DNS for names)", path, sa.GetAddress()))
				continue
			}
			w := e.GetLoadBalancingWeight().GetValue()
			if w == 0 {
				w = 1
			}
			c.endpoints = append(c.endpoints, endpointSpec{
				host: sa.GetAddress(), port: strconv.Itoa(int(sa.GetPortValue())),
				hostname: e.GetEndpoint().GetHostname(), weight: w,
				priority: le.GetPriority(), locality: locName,
				localityWeight: le.GetLoadBalancingWeight().GetValue(),
			})
		}
	}
	if c.Kind == LogicalDNS && len(c.endpoints) != 1 {
		errs = append(errs, errors.New("load_assignment: a LOGICAL_DNS cluster needs exactly one endpoint"))
	}
	return errors.Join(errs...)
}

// extensionPolicy picks the first policy of load_balancing_policy that
// Trellis implements (Envoy's rule): today the peak-EWMA balancer, given as
// a TypedStruct with type_url PeakEWMATypeURL and no fields.
func extensionPolicy(lbp *clusterv3.LoadBalancingPolicy) (lb.Policy, error) {
	for i, p := range lbp.GetPolicies() {
		tc := p.GetTypedExtensionConfig().GetTypedConfig()
		ts := &xdstypev3.TypedStruct{}
		if !tc.MessageIs(ts) {
			continue
		}
		if err := tc.UnmarshalTo(ts); err != nil {
			return nil, fmt.Errorf("load_balancing_policy.policies[%d].typed_extension_config.typed_config: %w", i, err)
		}
		if ts.GetTypeUrl() != PeakEWMATypeURL {
			continue
		}
		if n := len(ts.GetValue().GetFields()); n > 0 {
			return nil, fmt.Errorf("load_balancing_policy.policies[%d].typed_extension_config.typed_config.value: PeakEwma takes no fields", i)
		}
		return lb.PeakEWMA(), nil
	}
	return nil, fmt.Errorf("load_balancing_policy.policies: none is supported (Trellis implements an xds.type.v3.TypedStruct with type_url %q)", PeakEWMATypeURL)
}

// secretsKey encodes the static secrets cc refers to by name, so a pool is
// rebuilt when a referenced secret's contents change under the same name
// (a rotated trust bundle or certificate delivered over SDS).
func secretsKey(cc *tlsv3.CommonTlsContext, secrets tlsx.Secrets) string {
	refs := append([]*tlsv3.SdsSecretConfig(nil), cc.GetTlsCertificateSdsSecretConfigs()...)
	refs = append(refs, cc.GetValidationContextSdsSecretConfig(), cc.GetCombinedValidationContext().GetValidationContextSdsSecretConfig())
	var b []byte
	for _, r := range refs {
		if sec := secrets[r.GetName()]; r != nil && sec != nil {
			b, _ = proto.MarshalOptions{Deterministic: true}.MarshalAppend(b, sec)
		}
	}
	return string(b)
}
