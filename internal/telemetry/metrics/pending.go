package metrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Pending are the handles of one cluster's queue of requests waiting for
// an upstream connection (circuit_breakers max_pending_requests).
type Pending struct {
	// Active is the number of requests waiting now
	// (trellis_cluster_upstream_pending_requests_active; Envoy's
	// upstream_rq_pending_active).
	Active prometheus.Gauge
	// Total counts requests that had to wait
	// (trellis_cluster_upstream_pending_requests_total; Envoy's
	// upstream_rq_pending_total).
	Total prometheus.Counter
	// Overflow counts requests refused because the queue was full
	// (trellis_cluster_upstream_overflows_total{resource="pending"};
	// Envoy's upstream_rq_pending_overflow, flag UO).
	Overflow prometheus.Counter
}

// Pending returns the pending-queue handles of a cluster. The vectors are
// registered on first use; call it when a configuration is built, not per
// request.
func (r *Registry) Pending(cluster string) *Pending {
	active := registerOnce(r.Prom, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "trellis_cluster_upstream_pending_requests_active",
		Help: "Requests waiting for an upstream connection (circuit_breakers max_pending_requests).",
	}, []string{"cluster"}))
	total := registerOnce(r.Prom, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "trellis_cluster_upstream_pending_requests_total",
		Help: "Requests that waited for an upstream connection.",
	}, []string{"cluster"}))
	return &Pending{
		Active:   active.WithLabelValues(cluster),
		Total:    total.WithLabelValues(cluster),
		Overflow: r.upOverflow.WithLabelValues(cluster, "pending"),
	}
}

// registerOnce registers c, or returns the equal collector registered
// before (so no field on Registry is needed for lazily added metrics).
func registerOnce[C prometheus.Collector](reg *prometheus.Registry, c C) C {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		return are.ExistingCollector.(C)
	}
	if err != nil {
		panic(err) // a programmer error: the metric's definition conflicts with another
	}
	return c
}
