package metrics

import "github.com/prometheus/client_golang/prometheus"

// XDS holds the proxy's xDS client metrics. Create it once per proxy with
// NewXDS; its methods are safe for concurrent use.
type XDS struct {
	updates   *prometheus.CounterVec
	connected prometheus.Gauge
}

// NewXDS registers the xDS client metrics on r:
//
//   - trellis_xds_updates_total{type,result}: responses from the control
//     plane by resource type ("lds", "rds", "cds", "eds") and result ("ack"
//     or "nack"); Envoy's <type>.update_success and update_rejected.
//   - trellis_xds_connected: 1 while the ADS stream is up, else 0; Envoy's
//     control_plane.connected_state.
func NewXDS(r *Registry) *XDS {
	x := &XDS{
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trellis_xds_updates_total",
			Help: "xDS responses by resource type and result (ack or nack).",
		}, []string{"type", "result"}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "trellis_xds_connected",
			Help: "1 while the ADS stream to the control plane is up, else 0.",
		}),
	}
	r.Prom.MustRegister(x.updates, x.connected)
	return x
}

// Update counts one response of type typ ("lds", "rds", "cds", "eds"),
// accepted (ack) or rejected. A nil XDS counts nothing.
func (x *XDS) Update(typ string, ack bool) {
	if x == nil {
		return
	}
	result := "nack"
	if ack {
		result = "ack"
	}
	x.updates.WithLabelValues(typ, result).Inc()
}

// SetConnected records whether the ADS stream is up. A nil XDS records
// nothing.
func (x *XDS) SetConnected(up bool) {
	if x == nil {
		return
	}
	v := 0.0
	if up {
		v = 1
	}
	x.connected.Set(v)
}
