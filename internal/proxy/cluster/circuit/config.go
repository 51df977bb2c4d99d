package circuit

import (
	"errors"
	"fmt"
	"math"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Envoy's defaults for circuit_breakers.thresholds
// (envoy.config.cluster.v3.CircuitBreakers.Thresholds).
const (
	DefaultMaxConnections     = 1024
	DefaultMaxPendingRequests = 1024
	DefaultMaxRequests        = 1024
	DefaultMaxRetries         = 3

	// DefaultBudgetPercent is retry_budget.budget_percent when unset.
	DefaultBudgetPercent = 20.0
	// DefaultMinRetryConcurrency is retry_budget.min_retry_concurrency when
	// unset.
	DefaultMinRetryConcurrency = 3
)

// NumPriorities is the number of routing priorities (DEFAULT and HIGH).
const NumPriorities = 2

// Thresholds are the limits of one routing priority of a cluster. Every
// limit counts across all hosts of the cluster, and 0 is a real limit (it
// refuses everything), not "unset": use [Defaults] or [MeshDefaults] as a
// starting point.
type Thresholds struct {
	// MaxConnections bounds the upstream connections (max_connections).
	MaxConnections uint32
	// MaxPendingRequests bounds the requests waiting for a connection
	// (max_pending_requests); for non-HTTP traffic it bounds connections.
	MaxPendingRequests uint32
	// MaxRequests bounds the requests in flight (max_requests).
	MaxRequests uint32
	// MaxRetries bounds the retries in flight (max_retries). It is ignored
	// when Budget is set.
	MaxRetries uint32
	// Budget, when non-nil, limits retries in proportion to the traffic
	// instead of MaxRetries (retry_budget).
	Budget *Budget
	// TrackRemaining asks for the remaining_* gauges (track_remaining).
	// Breakers always know the remaining capacity (see [Breaker.Stats]);
	// this only tells the metrics exporter to publish it.
	TrackRemaining bool
}

// Budget is a retry budget (retry_budget): retries in flight may number
// up to Percent percent of the requests in flight plus the pending ones,
// and never fewer than MinConcurrency.
type Budget struct {
	// Percent is budget_percent, in [0, 100]. Values outside are clamped
	// by the Breaker.
	Percent float64
	// MinConcurrency is min_retry_concurrency: the budget's floor.
	MinConcurrency uint32
}

// Priorities holds the thresholds of each routing priority, indexed by
// corev3.RoutingPriority (DEFAULT = 0, HIGH = 1).
type Priorities [NumPriorities]Thresholds

// Defaults returns Envoy's thresholds for a priority that has none
// configured: 1024 connections, pending requests and requests, 3 retries,
// no budget. Standalone Envoy configurations get these.
func Defaults() Thresholds {
	return Thresholds{
		MaxConnections:     DefaultMaxConnections,
		MaxPendingRequests: DefaultMaxPendingRequests,
		MaxRequests:        DefaultMaxRequests,
		MaxRetries:         DefaultMaxRetries,
	}
}

// MeshDefaults returns Trellis' thresholds for mesh traffic: Envoy's
// defaults, with retries limited by a budget of 20% of the active requests
// with a floor of 3 (Linkerd's default), so a failing upstream never sees a
// retry storm. The control plane writes these into the clusters it
// generates unless a policy says otherwise.
func MeshDefaults() Thresholds {
	t := Defaults()
	t.Budget = &Budget{Percent: DefaultBudgetPercent, MinConcurrency: DefaultMinRetryConcurrency}
	return t
}

// ParseConfig decodes a cluster's circuit_breakers. A priority without
// thresholds, or a nil cb, gets [Defaults]. When several thresholds name the
// same priority the first one is used, as in Envoy. Every invalid or
// unsupported field is reported, with its path relative to cb:
// per_host_thresholds, max_connection_pools and a non-zero
// retry_budget.budget_interval are not supported.
func ParseConfig(cb *clusterv3.CircuitBreakers) (Priorities, error) {
	p := Priorities{Defaults(), Defaults()}
	var errs []error
	if len(cb.GetPerHostThresholds()) > 0 {
		errs = append(errs, errors.New("per_host_thresholds: not supported"))
	}
	var seen [NumPriorities]bool
	for i, th := range cb.GetThresholds() {
		if th == nil {
			errs = append(errs, fmt.Errorf("thresholds[%d]: must be set", i))
			continue
		}
		t, err := parseThresholds(th)
		if err != nil {
			errs = append(errs, prefix(fmt.Sprintf("thresholds[%d].", i), err))
			continue
		}
		pr := th.GetPriority()
		if !seen[pr] {
			seen[pr] = true
			p[pr] = t
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Priorities{}, err
	}
	return p, nil
}

// parseThresholds decodes one Thresholds; errors name fields relative to it.
func parseThresholds(th *clusterv3.CircuitBreakers_Thresholds) (Thresholds, error) {
	var errs []error
	if pr := th.GetPriority(); pr < 0 || pr >= NumPriorities {
		errs = append(errs, fmt.Errorf("priority: unknown routing priority %d", int32(pr)))
	}
	if th.GetMaxConnectionPools() != nil {
		errs = append(errs, errors.New("max_connection_pools: not supported"))
	}
	t := Defaults()
	t.TrackRemaining = th.GetTrackRemaining()
	setUint32(&t.MaxConnections, th.GetMaxConnections())
	setUint32(&t.MaxPendingRequests, th.GetMaxPendingRequests())
	setUint32(&t.MaxRequests, th.GetMaxRequests())
	setUint32(&t.MaxRetries, th.GetMaxRetries())
	if rb := th.GetRetryBudget(); rb != nil {
		b := &Budget{Percent: DefaultBudgetPercent, MinConcurrency: DefaultMinRetryConcurrency}
		if bp := rb.GetBudgetPercent(); bp != nil {
			// envoy: type.v3.Percent.value is a double in [0, 100].
			if v := bp.GetValue(); math.IsNaN(v) || v < 0 || v > 100 {
				errs = append(errs, errors.New("retry_budget.budget_percent.value: must be in [0,100]"))
			} else {
				b.Percent = v
			}
		}
		setUint32(&b.MinConcurrency, rb.GetMinRetryConcurrency())
		if bi := rb.GetBudgetInterval(); bi != nil {
			if err := bi.CheckValid(); err != nil {
				errs = append(errs, fmt.Errorf("retry_budget.budget_interval: %w", err))
			} else if bi.AsDuration() != 0 {
				// A non-zero interval counts requests started within it
				// rather than those in flight; only the default (0) is
				// implemented.
				errs = append(errs, errors.New("retry_budget.budget_interval: not supported (must be 0)"))
			}
		}
		t.Budget = b
	}
	return t, errors.Join(errs...)
}

func setUint32(dst *uint32, v *wrapperspb.UInt32Value) {
	if v != nil {
		*dst = v.GetValue()
	}
}

// prefix puts p before the message of err, or of each error err joins.
func prefix(p string, err error) error {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = fmt.Errorf("%s%w", p, e)
	}
	return errors.Join(out...)
}

// Proto returns the circuit_breakers that [ParseConfig] turns back into p,
// with every field explicit. The control plane uses it to write
// [MeshDefaults] into clusters.
func (p Priorities) Proto() *clusterv3.CircuitBreakers {
	cb := &clusterv3.CircuitBreakers{}
	for i, t := range p {
		th := &clusterv3.CircuitBreakers_Thresholds{
			Priority:           corev3.RoutingPriority(i),
			MaxConnections:     wrapperspb.UInt32(t.MaxConnections),
			MaxPendingRequests: wrapperspb.UInt32(t.MaxPendingRequests),
			MaxRequests:        wrapperspb.UInt32(t.MaxRequests),
			MaxRetries:         wrapperspb.UInt32(t.MaxRetries),
			TrackRemaining:     t.TrackRemaining,
		}
		if b := t.Budget; b != nil {
			th.RetryBudget = &clusterv3.CircuitBreakers_Thresholds_RetryBudget{
				BudgetPercent:       &typev3.Percent{Value: b.Percent},
				MinRetryConcurrency: wrapperspb.UInt32(b.MinConcurrency),
			}
		}
		cb.Thresholds = append(cb.Thresholds, th)
	}
	return cb
}
