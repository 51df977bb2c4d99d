package telemetry

import (
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// The proxy metrics the aggregator reads (docs/metrics.md).
const (
	famUpRequests  = "trellis_cluster_upstream_requests_total"
	famUpDuration  = "trellis_cluster_upstream_request_duration_seconds"
	famUpCx        = "trellis_cluster_upstream_connections_total"
	famUpCxActive  = "trellis_cluster_upstream_connections_active"
	famUpBytes     = "trellis_cluster_upstream_bytes_total"
	famUpMTLS      = "trellis_cluster_upstream_mtls"
	famDsRequests  = "trellis_http_downstream_requests_total"
	famDsDuration  = "trellis_http_downstream_request_duration_seconds"
	famDsGRPC      = "trellis_http_downstream_grpc_requests_total"
	famLnCx        = "trellis_listener_downstream_connections_total"
	famLnCxActive  = "trellis_listener_downstream_connections_active"
	famTCPBytes    = "trellis_tcp_bytes_total"
	famRtRequests  = "trellis_http_route_requests_total"
	famRtDuration  = "trellis_http_route_request_duration_seconds"
	inboundPrefix  = "inbound:"
	routeRuleInfix = "/rule/"
)

// extractor turns one push into the node's deltas, gauges and mTLS
// states per series.
type extractor struct {
	ns    *nodeState
	p     *Proxy
	count bool // add increases (false: baseline only)
	reset bool // the proxy restarted: counters count whole
}

func (e *extractor) family(f *dto.MetricFamily) {
	name := f.GetName()
	switch name {
	case famUpRequests, famUpDuration, famUpCx, famUpCxActive, famUpBytes, famUpMTLS,
		famDsRequests, famDsDuration, famDsGRPC, famLnCx, famLnCxActive, famTCPBytes, famRtRequests, famRtDuration:
	default:
		e.topicFamily(f) // topics.go
		return
	}
	for _, m := range f.GetMetric() {
		e.metric(name, m)
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func (e *extractor) metric(fam string, m *dto.Metric) {
	switch fam {
	case famUpRequests:
		cluster, code := label(m, "cluster"), label(m, "code")
		n := e.counter(sampleKey{fam, cluster, code}, m.GetCounter().GetValue())
		if n == 0 {
			return
		}
		c, _ := strconv.Atoi(code)
		failed := c == 0 || c >= 500
		e.toEdge(cluster, func(d *delta) {
			d.req += n
			if failed {
				d.fail += n
			}
		})
	case famUpDuration:
		cluster := label(m, "cluster")
		if lat, ok := e.histogram(sampleKey{fam, cluster, ""}, m.GetHistogram()); ok {
			e.toEdge(cluster, func(d *delta) { d.addLat(lat) })
		}
	case famUpCx:
		cluster := label(m, "cluster")
		if n := e.counter(sampleKey{fam, cluster, ""}, m.GetCounter().GetValue()); n > 0 {
			e.toEdge(cluster, func(d *delta) { d.cx += n })
		}
	case famUpBytes:
		cluster, dir := label(m, "cluster"), label(m, "direction")
		if n := e.counter(sampleKey{fam, cluster, dir}, m.GetCounter().GetValue()); n > 0 {
			e.toCluster(cluster, func(d *delta) { d.bytes(dir == "sent", n) })
		}
	case famTCPBytes:
		prefix, dir := label(m, "stat_prefix"), label(m, "direction")
		if n := e.counter(sampleKey{fam, prefix, dir}, m.GetCounter().GetValue()); n > 0 {
			// A proxy sends "upstream": toward the destination.
			e.toCluster(prefix, func(d *delta) { d.bytes(dir == "upstream", n) })
		}
	case famUpCxActive:
		if k, ok := e.edge(label(m, "cluster")); ok {
			e.ns.gauges[k] += int64(m.GetGauge().GetValue())
		}
	case famUpMTLS:
		if k, ok := e.edge(label(m, "cluster")); ok {
			e.ns.mtls[k] = int8(min(m.GetGauge().GetValue(), 1))
		}
	case famDsRequests:
		prefix, code := label(m, "stat_prefix"), label(m, "code")
		n := e.counter(sampleKey{fam, prefix, code}, m.GetCounter().GetValue())
		if n == 0 {
			return
		}
		c, _ := strconv.Atoi(code)
		failed := c == 0 || c >= 500
		e.toInbound(prefix, func(d *delta) {
			d.req += n
			if failed {
				d.fail += n
			}
		})
	case famDsGRPC:
		// Counted under HTTP 200 as well: a failing grpc-status turns a
		// success into a failure.
		prefix, code := label(m, "stat_prefix"), label(m, "grpc_status")
		n := e.counter(sampleKey{fam, prefix, code}, m.GetCounter().GetValue())
		if c, _ := strconv.Atoi(code); n > 0 && grpcFailure(c) {
			e.toInbound(prefix, func(d *delta) { d.fail += n })
		}
	case famDsDuration:
		prefix := label(m, "stat_prefix")
		if lat, ok := e.histogram(sampleKey{fam, prefix, ""}, m.GetHistogram()); ok {
			e.toInbound(prefix, func(d *delta) { d.addLat(lat) })
		}
	case famLnCx:
		prefix := listenerPrefix(label(m, "listener"))
		if n := e.counter(sampleKey{fam, prefix, ""}, m.GetCounter().GetValue()); n > 0 {
			e.toInbound(prefix, func(d *delta) { d.cx += n })
		}
	case famLnCxActive:
		prefix := listenerPrefix(label(m, "listener"))
		if v := int64(m.GetGauge().GetValue()); prefix != "" {
			e.eachInbound(prefix, func(k seriesKey) { e.ns.gauges[k] += v })
		}
	case famRtRequests:
		route, class := label(m, "route"), label(m, "code_class")
		n := e.counter(sampleKey{fam, route, class}, m.GetCounter().GetValue())
		if k, ok := e.route(route); ok && n > 0 {
			d := e.delta(k)
			d.req += n
			if class == "5xx" || class == "none" {
				d.fail += n
			}
		}
	case famRtDuration:
		route := label(m, "route")
		if lat, ok := e.histogram(sampleKey{fam, route, ""}, m.GetHistogram()); ok {
			if k, ok := e.route(route); ok {
				e.delta(k).addLat(lat)
			}
		}
	}
}

// counter returns the increase of a cumulative counter since the last
// push (0 for a baseline push).
func (e *extractor) counter(k sampleKey, v float64) uint64 {
	prev, seen := e.ns.prev[k]
	e.ns.prev[k] = v
	if !e.count {
		return 0
	}
	// A sample absent last time started at zero (a labelled counter exists
	// from its first increment); one lower than before was reset.
	if !seen || e.reset || v < prev {
		prev = 0
	}
	if d := v - prev; d >= 0.5 {
		return uint64(d + 0.5)
	}
	return 0
}

// histogram returns the per-bucket increase of a cumulative histogram,
// folded into the aggregator's buckets.
func (e *extractor) histogram(k sampleKey, h *dto.Histogram) (*[nLat]float64, bool) {
	var cur [nLat]float64
	var below float64
	for _, b := range h.GetBucket() {
		c := float64(b.GetCumulativeCount())
		if b.GetCumulativeCountFloat() > 0 {
			c = b.GetCumulativeCountFloat()
		}
		cur[latIndex(b.GetUpperBound())] += c - below
		below = c
	}
	total := float64(h.GetSampleCount())
	if h.GetSampleCountFloat() > 0 {
		total = h.GetSampleCountFloat()
	}
	cur[nLat-1] += max(total-below, 0)
	prev := e.ns.hist[k]
	if prev == nil {
		prev = new([nLat]float64)
		e.ns.hist[k] = prev
	}
	old := *prev
	*prev = cur
	if !e.count {
		return nil, false
	}
	reset := e.reset
	for i := range cur {
		if cur[i] < old[i] {
			reset = true
		}
	}
	any := false
	for i := range cur {
		if !reset {
			cur[i] -= old[i]
		}
		any = any || cur[i] >= 0.5
	}
	e.ns.scratch = cur
	return &e.ns.scratch, any
}

func (d *delta) addLat(lat *[nLat]float64) {
	for i, c := range lat {
		if n := uint64(c + 0.5); n > 0 {
			d.lat[i] += n
			d.latAny = true
		}
	}
}

func (d *delta) bytes(sent bool, n uint64) {
	if sent {
		d.tx += n
	} else {
		d.rx += n
	}
}

func (e *extractor) delta(k seriesKey) *delta {
	d := e.ns.deltas[k]
	if d == nil {
		if n := len(e.ns.free); n > 0 {
			d, e.ns.free = e.ns.free[n-1], e.ns.free[:n-1]
		} else {
			d = new(delta)
		}
		e.ns.deltas[k] = d
	}
	return d
}

// toEdge applies f to the edge of a mesh service's cluster.
func (e *extractor) toEdge(cluster string, f func(*delta)) {
	if k, ok := e.edge(cluster); ok {
		f(e.delta(k))
	}
}

// toCluster applies f, which counts bytes, to the edge of a mesh
// service's cluster, or to the inbound's services and dataplane for an
// inbound cluster (bytes to and from the application). Requests and
// latency of an inbound come from its connection manager instead.
func (e *extractor) toCluster(cluster string, f func(*delta)) {
	if strings.HasPrefix(cluster, inboundPrefix) {
		e.toInbound(cluster, f)
		return
	}
	e.toEdge(cluster, f)
}

func (e *extractor) toInbound(prefix string, f func(*delta)) {
	e.eachInbound(prefix, func(k seriesKey) { f(e.delta(k)) })
}

// eachInbound calls f with the series of an inbound stat prefix: each
// service served there, and the dataplane.
func (e *extractor) eachInbound(prefix string, f func(seriesKey)) {
	if !strings.HasPrefix(prefix, inboundPrefix) || e.p.Dataplane == "" {
		return
	}
	for _, svc := range e.p.Inbound[prefix] {
		f(seriesKey{kind: KindService, mesh: e.p.Mesh, name: svc})
	}
	f(seriesKey{kind: KindDataplane, mesh: e.p.Mesh, name: e.p.Dataplane})
}

// edge returns the edge of a mesh cluster, "<ns>/<svc>:<port>".
func (e *extractor) edge(cluster string) (seriesKey, bool) {
	slash, colon := strings.IndexByte(cluster, '/'), strings.LastIndexByte(cluster, ':')
	if e.p.Service == "" || slash <= 0 || colon < slash+2 || strings.HasPrefix(cluster, inboundPrefix) {
		return seriesKey{}, false
	}
	return seriesKey{kind: KindEdge, mesh: e.p.Mesh, name: cluster[:colon], from: e.p.Service}, true
}

// route returns the series of a translator route name,
// "<ns>/<name>/rule/<i>/match/<j>": the route, by calling service.
func (e *extractor) route(name string) (seriesKey, bool) {
	i := strings.Index(name, routeRuleInfix)
	if i <= 0 || strings.Count(name[:i], "/") != 1 {
		return seriesKey{}, false
	}
	return seriesKey{kind: KindRoute, mesh: e.p.Mesh, name: name[:i], from: e.p.Service}, true
}

// listenerPrefix maps an inbound listener, "inbound:<address>:<port>", to
// its stat prefix, "inbound:<port>"; "" for other listeners.
func listenerPrefix(l string) string {
	if !strings.HasPrefix(l, inboundPrefix) {
		return ""
	}
	return inboundPrefix + l[strings.LastIndexByte(l, ':')+1:]
}

// grpcFailure tells whether a grpc-status is a failure: those that map to
// a 5xx (UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE,
// DATA_LOSS), as an HTTP 5xx is, while client errors such as NOT_FOUND or
// RESOURCE_EXHAUSTED are not.
func grpcFailure(code int) bool {
	switch code {
	case 2, 4, 12, 13, 14, 15:
		return true
	}
	return false
}
