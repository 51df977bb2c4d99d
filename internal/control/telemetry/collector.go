package telemetry

import "github.com/prometheus/client_golang/prometheus"

// Collector exposes the aggregated golden metrics for a real Prometheus:
// cumulative counters and latency histograms per series since the series
// appeared (rate() and histogram_quantile() work on them as on any
// counters), open connections, and the aggregator's own health. Labels:
// kind (service, route, dataplane, edge), mesh, name (namespace/name; the
// destination of an edge) and source (the calling service of an edge or
// route, "" otherwise).
type Collector struct{ a *Aggregator }

// Collector returns the aggregator's Prometheus collector.
func (a *Aggregator) Collector() *Collector { return &Collector{a} }

var (
	seriesLabels = []string{"kind", "mesh", "name", "source"}
	descRequests = prometheus.NewDesc("trellis_mesh_requests_total",
		"Requests seen by the mesh's proxies, by result (failure: 5xx or no response).", append(seriesLabels, "result"), nil)
	descDuration = prometheus.NewDesc("trellis_mesh_request_duration_seconds",
		"Request latency seen by the mesh's proxies (the sum is not kept: always 0).", seriesLabels, nil)
	descCx = prometheus.NewDesc("trellis_mesh_tcp_connections_total",
		"Connections opened.", seriesLabels, nil)
	descCxActive = prometheus.NewDesc("trellis_mesh_tcp_connections_active",
		"Connections open at the proxies' last push.", seriesLabels, nil)
	descBytes = prometheus.NewDesc("trellis_mesh_bytes_total",
		"Bytes exchanged, by direction seen from the reporting proxy (sent: toward the destination).", append(seriesLabels, "direction"), nil)
	descSeries = prometheus.NewDesc("trellis_mesh_telemetry_series",
		"Golden-metric and topic series held by the control plane (together capped).", nil, nil)
	descDropped = prometheus.NewDesc("trellis_mesh_telemetry_series_dropped_total",
		"Increases dropped because the series cap was reached.", nil, nil)
	descPushes = prometheus.NewDesc("trellis_mesh_telemetry_pushes_total",
		"Metric pushes received from proxies.", nil, nil)
)

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descDuration, descCx, descCxActive, descBytes, descSeries, descDropped, descPushes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	now := a.o.Now()
	type snap struct {
		k      seriesKey
		t      delta
		active int64
	}
	a.mu.Lock()
	snaps := make([]snap, 0, len(a.series))
	for k, s := range a.series {
		sn := snap{k: k, t: s.total}
		for _, g := range s.active {
			if now.Sub(g.at) <= a.o.StaleAfter {
				sn.active += g.v
			}
		}
		snaps = append(snaps, sn)
	}
	dropped, pushes, topics := a.dropped, a.pushes, len(a.topics)
	a.mu.Unlock()

	ch <- prometheus.MustNewConstMetric(descSeries, prometheus.GaugeValue, float64(len(snaps)+topics))
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(dropped))
	ch <- prometheus.MustNewConstMetric(descPushes, prometheus.CounterValue, float64(pushes))
	for _, s := range snaps {
		lv := []string{s.k.kind.String(), s.k.mesh, s.k.name, s.k.from}
		t := &s.t
		ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(t.req-min(t.fail, t.req)), append(lv, "success")...)
		ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(t.fail), append(lv, "failure")...)
		buckets := make(map[float64]uint64, nLat-1)
		var cum uint64
		for i, b := range latBounds {
			cum += t.lat[i]
			buckets[b] = cum
		}
		ch <- prometheus.MustNewConstHistogram(descDuration, cum+t.lat[nLat-1], 0, buckets, lv...)
		ch <- prometheus.MustNewConstMetric(descCx, prometheus.CounterValue, float64(t.cx), lv...)
		ch <- prometheus.MustNewConstMetric(descCxActive, prometheus.GaugeValue, float64(s.active), lv...)
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(t.tx), append(lv, "sent")...)
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(t.rx), append(lv, "received")...)
	}
}

var _ prometheus.Collector = (*Collector)(nil)
