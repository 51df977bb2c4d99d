package cluster

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster/circuit"
	"github.com/trellis-mesh/trellis/internal/proxy/cluster/health"
	"github.com/trellis-mesh/trellis/internal/proxy/cluster/lb"
	"github.com/trellis-mesh/trellis/internal/proxy/cluster/outlier"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
)

// Kind is the cluster discovery type.
type Kind uint8

// The supported discovery types.
const (
	Static Kind = iota
	StrictDNS
	LogicalDNS
)

func (k Kind) String() string {
	return [...]string{"STATIC", "STRICT_DNS", "LOGICAL_DNS"}[k]
}

// Cluster is one upstream cluster of a snapshot.
type Cluster struct {
	Name           string
	Kind           Kind
	ConnectTimeout time.Duration
	// Scheme is "https" when the cluster has an upstream TLS context.
	Scheme string
	Stats  *metrics.Cluster

	breakers   *circuit.Breakers // long-lived, shared by the cluster's snapshots
	outlier    *outlier.Detector // long-lived; nil without outlier_detection
	outlierCfg outlier.Config
	health     *health.Checker // long-lived; nil without health_checks
	healthCfg  health.Config
	thresholds circuit.Priorities // this snapshot's limits, applied on Commit

	observeLatency   bool   // the policy wants Host.Observe (peak EWMA)
	overprovisioning uint32 // percent
	panicThreshold   uint32 // percent
	localityLB       bool   // common_lb_config.locality_weighted_lb_config

	policy    lb.Policy
	endpoints []endpointSpec // as configured (DNS names unresolved)
	state     atomic.Pointer[hostSet]
	committed atomic.Bool // set by Manager.Commit; DNS results then reach the detector
	pools     *pools
	dns       *dnsConfig
	mgr       *Manager
}

// endpointSpec is one configured lb_endpoint.
type endpointSpec struct {
	host     string // IP or DNS name
	port     string
	hostname string // endpoint.hostname
	weight   uint32
	priority uint32
	locality string
	// localityWeight is the load_balancing_weight of the endpoint's
	// LocalityLbEndpoints (0 when unset).
	localityWeight uint32
}

// hostSet is one version of the cluster's hosts with a picker per
// priority.
type hostSet struct {
	all    []HostStatus // every host, all priorities, for /clusters
	levels []level
}

// HostStatus describes one host for the admin /clusters page.
type HostStatus struct {
	Host     *lb.Host
	Weight   uint32
	Priority uint32
	Locality string
	// LocalityWeight is the load_balancing_weight of the host's locality,
	// used with locality-weighted load balancing (0 when unset).
	LocalityWeight uint32
}

// Pick chooses a host for a request, or returns nil when the cluster has
// no host that may receive traffic.
func (c *Cluster) Pick(req *lb.Request) *lb.Host {
	s := c.state.Load()
	if s == nil || len(s.levels) == 0 {
		return nil
	}
	return s.pickLevel().picker.Pick(req)
}

// Hosts returns the cluster's current hosts.
func (c *Cluster) Hosts() []HostStatus {
	if s := c.state.Load(); s != nil {
		return s.all
	}
	return nil
}

// Transport returns the round tripper for a request arriving over the
// downstream protocol major version (1 or 2); it only matters for clusters
// with use_downstream_protocol_config.
func (c *Cluster) Transport(downstreamMajor int) http.RoundTripper {
	if downstreamMajor == 2 && c.pools.h2 != nil {
		return c.pools.h2
	}
	return c.pools.main
}

// ObservesLatency reports whether the router must call Host.Observe after
// each request (the cluster balances on latency).
func (c *Cluster) ObservesLatency() bool { return c.observeLatency }

// Dial opens a connection for tcp_proxy to addr: TLS when the cluster has
// an upstream TLS context, counted by the connection circuit breaker. Errors
// are ConnectError or ErrConnectionOverflow.
func (c *Cluster) Dial(ctx context.Context, addr string) (net.Conn, error) {
	return c.pools.raw(ctx, "tcp", addr)
}

// setMembers installs a new set of resolved hosts.
func (c *Cluster) setMembers(all []HostStatus) {
	if c.committed.Load() {
		if c.outlier != nil {
			c.outlier.SetHosts(hostsOf(all))
		}
		if c.health != nil {
			c.health.SetHosts(hostsOf(all))
		}
	}
	c.rebuild(all)
}

func hostsOf(all []HostStatus) []*lb.Host {
	hs := make([]*lb.Host, len(all))
	for i, h := range all {
		hs[i] = h.Host
	}
	return hs
}

// Report tells the cluster's outlier detector (if any) how a request to h
// went: an HTTP status, or a local-origin failure (connect failure, reset,
// timeout) with status 0. It is cheap and never allocates.
func (c *Cluster) Report(h *lb.Host, o outlier.Outcome, status int) {
	if c.outlier != nil {
		c.outlier.Report(h, o, status)
	}
}

// HealthChanged rebuilds the pickers after a host's health flags changed
// (active health checking, outlier detection).
func (c *Cluster) HealthChanged() { c.rebuild(c.Hosts()) }

// breaker returns the circuit breaker of the DEFAULT routing priority
// (route priorities are not supported, so every request uses it).
func (c *Cluster) breaker() *circuit.Breaker { return c.breakers.For(corev3.RoutingPriority_DEFAULT) }

// AcquireRequest admits one upstream request (an attempt) under
// circuit_breakers max_requests, or reports the overflow (Envoy's UO).
// An admitted request is released with ReleaseRequest.
func (c *Cluster) AcquireRequest() bool {
	if c.breaker().AcquireRequest() {
		return true
	}
	c.Stats.Overflow.Inc()
	return false
}

// ReleaseRequest ends a request admitted by AcquireRequest.
func (c *Cluster) ReleaseRequest() { c.breaker().ReleaseRequest() }

// AcquireRetry admits one more concurrent retry (max_retries, or the retry
// budget), or reports the overflow. An admitted retry is released with
// ReleaseRetry when its attempt has its answer.
func (c *Cluster) AcquireRetry() bool {
	if c.breaker().AcquireRetry() {
		return true
	}
	c.Stats.RetryOverflow.Inc()
	return false
}

// ReleaseRetry ends a retry admitted by AcquireRetry.
func (c *Cluster) ReleaseRetry() {
	c.breaker().ReleaseRetry()
	c.Stats.Retries.Inc()
}

// ConfiguredAddresses returns the cluster's endpoints as configured,
// "host:port" with DNS names unresolved: for clients that resolve names
// themselves (the OTLP exporter) when the cluster has no resolved host yet.
func (c *Cluster) ConfiguredAddresses() []string {
	out := make([]string, 0, len(c.endpoints))
	for _, e := range c.endpoints {
		out = append(out, net.JoinHostPort(e.host, e.port))
	}
	return out
}
