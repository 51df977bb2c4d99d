package metrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Local rate limit filters, as the filter label of
// trellis_ratelimit_decisions_total.
const (
	RateLimitHTTP    = "http_local_ratelimit"
	RateLimitNetwork = "network_local_ratelimit"
)

// RateLimit are the handles of one local rate limit filter (by filter kind
// and stat_prefix). Envoy's counterparts are
// <stat_prefix>.http_local_rate_limit.{ok,rate_limited,enforced} and
// <stat_prefix>.local_rate_limit.rate_limited. A nil *RateLimit counts
// nothing.
type RateLimit struct {
	ok, limited, shadow prometheus.Counter
}

// RateLimit returns the handles of a local rate limit filter; filter is
// RateLimitHTTP or RateLimitNetwork. The counter vector is registered on
// first use, so a proxy without rate limits exports none.
func (r *Registry) RateLimit(filter, statPrefix string) *RateLimit {
	if r == nil {
		return nil
	}
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "trellis_ratelimit_decisions_total",
		Help: "Local rate limit decisions: ok (admitted), limited (refused), shadow (over the limit but not enforced, admitted).",
	}, []string{"filter", "stat_prefix", "result"})
	if err := r.Prom.Register(v); err != nil {
		// Registered by an earlier call: use that vector (the registry is
		// the one place it lives, no package state).
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			panic(err) // a different metric with this name: a programmer error
		}
		v = are.ExistingCollector.(*prometheus.CounterVec)
	}
	return &RateLimit{
		ok:      v.WithLabelValues(filter, statPrefix, "ok"),
		limited: v.WithLabelValues(filter, statPrefix, "limited"),
		shadow:  v.WithLabelValues(filter, statPrefix, "shadow"),
	}
}

// OK counts an admitted request or connection.
func (rl *RateLimit) OK() {
	if rl != nil {
		rl.ok.Inc()
	}
}

// Limited counts a refused request or connection.
func (rl *RateLimit) Limited() {
	if rl != nil {
		rl.limited.Inc()
	}
}

// Shadow counts a request over the limit that was let through because the
// filter is not enforced.
func (rl *RateLimit) Shadow() {
	if rl != nil {
		rl.shadow.Inc()
	}
}
