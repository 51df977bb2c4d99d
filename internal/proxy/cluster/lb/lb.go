package lb

import (
	"sync/atomic"
)

// Host is one upstream endpoint (an address) as load balancers see it. A
// Host is long-lived: cluster.Manager owns it, keyed by cluster and address,
// and hands the same *Host to every endpoint-set version that contains the
// address, so in-flight counters, health and outlier state survive config
// updates. Hosts must not be copied.
type Host struct {
	// Address is "ip:port" (or "host:port" for DNS clusters before resolution).
	Address string
	// Hostname is the endpoint's hostname (Envoy: endpoint.hostname, or the DNS
	// name a STRICT_DNS/LOGICAL_DNS host was resolved from); used for
	// auto_host_rewrite. May be empty.
	Hostname string

	active atomic.Int64 // requests in flight to this host

	// Health flags, as Envoy's /clusters health_flags name them. The active
	// health checker owns failedActiveHC, the outlier detector owns ejected.
	failedActiveHC atomic.Bool
	ejected        atomic.Bool

	ewma peakEWMA // PeakEWMA's latency state
}

// SetFailedActiveHealthCheck records the active health checker's verdict
// and reports whether it changed.
func (h *Host) SetFailedActiveHealthCheck(failed bool) bool {
	return h.failedActiveHC.Swap(failed) != failed
}

// FailedActiveHealthCheck reports whether active health checking failed
// the host (/failed_active_hc).
func (h *Host) FailedActiveHealthCheck() bool { return h.failedActiveHC.Load() }

// SetEjected records an outlier ejection (true) or its end (false) and
// reports whether it changed.
func (h *Host) SetEjected(ejected bool) bool { return h.ejected.Swap(ejected) != ejected }

// Ejected reports whether the outlier detector ejected the host
// (/failed_outlier_check).
func (h *Host) Ejected() bool { return h.ejected.Load() }

// Healthy reports whether the host may receive traffic as far as health
// checking and outlier detection are concerned.
func (h *Host) Healthy() bool { return !h.failedActiveHC.Load() && !h.ejected.Load() }

// NewHost returns a Host for address.
func NewHost(address, hostname string) *Host {
	return &Host{Address: address, Hostname: hostname}
}

// Active reports the number of requests in flight to h.
func (h *Host) Active() int64 { return h.active.Load() }

// Begin marks the start of a request to h; the caller must call End when the
// request finishes.
func (h *Host) Begin() { h.active.Add(1) }

// End marks the end of a request started with Begin.
func (h *Host) End() { h.active.Add(-1) }

// Member is a host with its load-balancing weight in one endpoint-set
// version. Weight is at least 1 (Envoy: load_balancing_weight defaults to 1).
type Member struct {
	Host   *Host
	Weight uint32
}

// Request is what a picker may look at for one pick. The zero value means
// "no hash": hashing policies then pick as if the hash were random.
type Request struct {
	// Hash is the request hash computed from the route's hash_policy.
	Hash uint64
	// HasHash says Hash is set.
	HasHash bool
}

// Picker chooses a host for one request. A Picker is built once per endpoint
// set (EDS update or health change) and is immutable afterwards; Pick is
// called concurrently and must not allocate. Pick returns nil only when the
// picker has no members.
type Picker interface {
	Pick(req *Request) *Host
}

// Policy builds pickers for one load-balancing algorithm. Build is called on
// endpoint-set changes, never per request. members holds only the hosts that
// may receive traffic (health filtering is the caller's job) and may be
// empty, in which case the Picker always returns nil.
type Policy interface {
	Build(members []Member) Picker
}
