package bridge

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of trellis_bridge_published_total.
const (
	resultOK          = "ok"
	resultRefused     = "refused"     // 502
	resultUnavailable = "unavailable" // 503
	resultTimeout     = "timeout"     // 504
)

// Results of trellis_bridge_delivered_total (one per POST attempt, plus
// the final fate of a message that was not delivered).
const (
	deliveredOK       = "ok"            // the application answered 2xx
	deliveredRejected = "rejected"      // the application answered non-2xx
	deliveredError    = "error"         // no answer (connection error, timeout)
	deliveredDead     = "dead_lettered" // sent to the dead-letter topic
	deliveredDropped  = "dropped"       // attempts exhausted, no dead-letter topic
)

// metrics are the bridge's Prometheus vectors.
type metrics struct {
	published    *prometheus.CounterVec
	publishDur   *prometheus.HistogramVec
	delivered    *prometheus.CounterVec
	retries      *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	lag          *prometheus.GaugeVec
}

var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// newMetrics makes the vectors and registers them on reg (nil: nowhere).
// Vectors already registered (a second bridge on one registry) are
// shared.
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trellis_bridge_published_total",
			Help: "Messages the application published through the bridge, by broker, topic and result (ok, refused, unavailable, timeout)."},
			[]string{"broker", "topic", "result"}),
		publishDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "trellis_bridge_publish_duration_seconds",
			Help: "Time from reading a publish request to the broker's acknowledgement.", Buckets: latencyBuckets}, []string{"broker"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trellis_bridge_delivered_total",
			Help: "Delivery attempts to the application by result (ok, rejected, error), and messages given up (dead_lettered, dropped)."},
			[]string{"subscription", "broker", "topic", "result"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trellis_bridge_retries_total",
			Help: "Delivery attempts after the first."}, []string{"subscription"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trellis_bridge_dead_lettered_total",
			Help: "Messages published to the subscription's dead-letter topic."}, []string{"subscription"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "trellis_bridge_lag",
			Help: "Messages waiting for the subscription as the broker reports it (Kafka group lag, JetStream pending, AMQP queue depth)."},
			[]string{"subscription"}),
	}
	if reg == nil {
		return m
	}
	m.published = register(reg, m.published)
	m.publishDur = register(reg, m.publishDur)
	m.delivered = register(reg, m.delivered)
	m.retries = register(reg, m.retries)
	m.deadLettered = register(reg, m.deadLettered)
	m.lag = register(reg, m.lag)
	return m
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// A conflicting descriptor is a programmer error in this package.
		panic(err)
	}
	return c
}

func publishResult(status int) string {
	switch status {
	case 502:
		return resultRefused
	case 504:
		return resultTimeout
	default:
		return resultUnavailable
	}
}
