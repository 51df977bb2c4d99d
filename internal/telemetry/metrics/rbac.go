package metrics

import "github.com/prometheus/client_golang/prometheus"

// RBAC filter kinds and modes, as labels of trellis_rbac_decisions_total.
const (
	RBACHTTP    = "http"
	RBACNetwork = "network"
	RBACEnforce = "enforce" // rules: a denial is enforced
	RBACShadow  = "shadow"  // shadow_rules: evaluated and counted, never enforced
)

// RBAC are the decision counters of one RBAC rule set (by filter kind,
// stat prefix and mode). Envoy's counterparts are
// <stat_prefix>rbac.{allowed,denied} and
// <stat_prefix>rbac.<shadow_rules_stat_prefix>shadow_{allowed,denied}.
// A nil *RBAC counts nothing.
type RBAC struct {
	allowed, denied prometheus.Counter
}

// RBAC returns the counters of an RBAC rule set; filter is RBACHTTP or
// RBACNetwork, mode RBACEnforce or RBACShadow. The vector is registered on
// first use, so a proxy without RBAC filters exports none. Call it when a
// configuration is built, not per request.
func (r *Registry) RBAC(filter, statPrefix, mode string) *RBAC {
	if r == nil {
		return nil
	}
	v := registerOnce(r.Prom, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "trellis_rbac_decisions_total",
		Help: "RBAC filter decisions: allowed or denied, by rule set (enforce: rules, shadow: shadow_rules, which never block).",
	}, []string{"filter", "stat_prefix", "mode", "result"}))
	return &RBAC{
		allowed: v.WithLabelValues(filter, statPrefix, mode, "allowed"),
		denied:  v.WithLabelValues(filter, statPrefix, mode, "denied"),
	}
}

// Allowed counts a request or connection the rules allowed.
func (x *RBAC) Allowed() {
	if x != nil {
		x.allowed.Inc()
	}
}

// Denied counts a request or connection the rules denied (in shadow mode:
// would have denied).
func (x *RBAC) Denied() {
	if x != nil {
		x.denied.Inc()
	}
}

// Count counts one decision.
func (x *RBAC) Count(allowed bool) {
	if allowed {
		x.Allowed()
	} else {
		x.Denied()
	}
}
