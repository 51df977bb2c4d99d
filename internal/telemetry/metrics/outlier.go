package metrics

import "github.com/prometheus/client_golang/prometheus"

// Outlier implements the outlier detector's metrics for one cluster
// (Envoy's cluster.<name>.outlier_detection.* statistics). Its methods
// match outlier.Metrics; the type parameter keeps this package free of the
// proxy's packages.
type Outlier[T interface{ String() string }] struct {
	detected *prometheus.CounterVec
	ejected  *prometheus.CounterVec
	overflow prometheus.Counter
	active   prometheus.Gauge
	cluster  string
}

// NewOutlier returns the outlier-detection handles of a cluster. The
// vectors are registered on first use; call it when a configuration is
// built, not per request.
func NewOutlier[T interface{ String() string }](r *Registry, cluster string) *Outlier[T] {
	detected := registerOnce(r.Prom, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "trellis_cluster_outlier_detected_total",
		Help: "Hosts found to be outliers, enforced or not, by detector type (ejections_detected_*).",
	}, []string{"cluster", "type"}))
	ejected := registerOnce(r.Prom, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "trellis_cluster_outlier_ejections_total",
		Help: "Hosts ejected from load balancing, by detector type (ejections_enforced_*).",
	}, []string{"cluster", "type"}))
	overflow := registerOnce(r.Prom, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "trellis_cluster_outlier_ejection_overflows_total",
		Help: "Ejections skipped because max_ejection_percent was reached (ejections_overflow).",
	}, []string{"cluster"}))
	active := registerOnce(r.Prom, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "trellis_cluster_outlier_ejections_active",
		Help: "Hosts ejected now (ejections_active); a return to service lowers it.",
	}, []string{"cluster"}))
	return &Outlier[T]{detected: detected, ejected: ejected, overflow: overflow.WithLabelValues(cluster),
		active: active.WithLabelValues(cluster), cluster: cluster}
}

// Detected counts an outlier found by detector t.
func (o *Outlier[T]) Detected(t T) { o.detected.WithLabelValues(o.cluster, t.String()).Inc() }

// Ejected counts an enforced ejection by detector t.
func (o *Outlier[T]) Ejected(t T) { o.ejected.WithLabelValues(o.cluster, t.String()).Inc() }

// Overflow counts an ejection skipped for max_ejection_percent.
func (o *Outlier[T]) Overflow() { o.overflow.Inc() }

// Active sets the number of hosts ejected now.
func (o *Outlier[T]) Active(n int) { o.active.Set(float64(n)) }
