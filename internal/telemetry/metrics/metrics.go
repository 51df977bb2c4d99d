// Package metrics holds the proxy's Prometheus metrics and the pre-resolved
// handles the hot path uses. Vectors live as long as the proxy (one Registry
// per proxy, no globals); handles are resolved when a configuration snapshot
// is built, so counting a request is a few atomic adds and never a label
// lookup.
//
// Names follow trellis_<subsystem>_<name>_<unit>; docs/metrics.md maps each
// to its Envoy stat counterpart.
package metrics

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// LatencyBuckets are the histogram buckets, in seconds, for request latency.
var LatencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// Registry is the set of proxy metrics. Create one per proxy with New.
type Registry struct {
	Prom *prometheus.Registry

	dsRequests *prometheus.CounterVec
	dsActive   *prometheus.GaugeVec
	dsDuration *prometheus.HistogramVec
	dsGRPC     *prometheus.CounterVec
	dsCx       *prometheus.CounterVec
	dsCxActive *prometheus.GaugeVec
	rtRequests *prometheus.CounterVec
	rtDuration *prometheus.HistogramVec
	upRequests *prometheus.CounterVec
	upDuration *prometheus.HistogramVec
	upCx       *prometheus.CounterVec
	upCxFail   *prometheus.CounterVec
	upCxActive *prometheus.GaugeVec
	upBytes    *prometheus.CounterVec
	upRetries  *prometheus.CounterVec
	upRetryOvf *prometheus.CounterVec
	upOverflow *prometheus.CounterVec
	tcpCx      *prometheus.CounterVec
	tcpActive  *prometheus.GaugeVec
	tcpBytes   *prometheus.CounterVec
	netLimited *prometheus.CounterVec
}

// New returns a Registry with every metric registered, plus the Go and
// process collectors.
func New() *Registry {
	r := &Registry{Prom: prometheus.NewRegistry()}
	c := func(name, help string, labels ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		r.Prom.MustRegister(v)
		return v
	}
	g := func(name, help string, labels ...string) *prometheus.GaugeVec {
		v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
		r.Prom.MustRegister(v)
		return v
	}
	h := func(name, help string, labels ...string) *prometheus.HistogramVec {
		v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: LatencyBuckets}, labels)
		r.Prom.MustRegister(v)
		return v
	}
	r.dsRequests = c("trellis_http_downstream_requests_total", "HTTP requests completed by the connection manager, by response code.", "stat_prefix", "code")
	r.dsActive = g("trellis_http_downstream_requests_active", "HTTP requests in flight.", "stat_prefix")
	r.dsDuration = h("trellis_http_downstream_request_duration_seconds", "Time from request start to the last response byte.", "stat_prefix")
	r.dsGRPC = c("trellis_http_downstream_grpc_requests_total", "gRPC requests answered with HTTP 200, by grpc-status.", "stat_prefix", "grpc_status")
	r.dsCx = c("trellis_listener_downstream_connections_total", "Connections accepted.", "listener")
	r.dsCxActive = g("trellis_listener_downstream_connections_active", "Connections open.", "listener")
	r.rtRequests = c("trellis_http_route_requests_total", "HTTP requests by route and response code class.", "stat_prefix", "virtual_host", "route", "code_class")
	r.rtDuration = h("trellis_http_route_request_duration_seconds", "Request latency by route.", "stat_prefix", "virtual_host", "route")
	r.upRequests = c("trellis_cluster_upstream_requests_total", "Upstream requests by response code (0: no response).", "cluster", "code")
	r.upDuration = h("trellis_cluster_upstream_request_duration_seconds", "Time from sending the upstream request to its response headers.", "cluster")
	r.upCx = c("trellis_cluster_upstream_connections_total", "Upstream connections opened.", "cluster")
	r.upCxFail = c("trellis_cluster_upstream_connect_failures_total", "Upstream connection attempts that failed.", "cluster")
	r.upCxActive = g("trellis_cluster_upstream_connections_active", "Upstream connections open.", "cluster")
	r.upBytes = c("trellis_cluster_upstream_bytes_total", "Body bytes exchanged with upstreams.", "cluster", "direction")
	r.upRetries = c("trellis_cluster_upstream_retries_total", "Retried upstream requests.", "cluster")
	r.upRetryOvf = c("trellis_cluster_upstream_retry_overflows_total", "Retries refused by the retry circuit breaker or budget.", "cluster")
	r.upOverflow = c("trellis_cluster_upstream_overflows_total", "Requests and connections refused by the circuit breakers (flag UO).", "cluster", "resource")
	r.tcpCx = c("trellis_tcp_connections_total", "Connections handled by tcp_proxy.", "stat_prefix")
	r.tcpActive = g("trellis_tcp_connections_active", "tcp_proxy connections open.", "stat_prefix")
	r.tcpBytes = c("trellis_tcp_bytes_total", "Bytes proxied by tcp_proxy.", "stat_prefix", "direction")
	r.netLimited = c("trellis_network_rate_limited_total", "Connections closed by a local_ratelimit network filter.", "stat_prefix")
	r.Prom.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// codes counts by exact response code, resolving each code's counter once.
type codes struct {
	vec    *prometheus.CounterVec
	labels []string // all labels but the last ("code")
	byCode [600]atomic.Pointer[prometheus.Counter]
	mu     sync.Mutex
}

func newCodes(vec *prometheus.CounterVec, labels ...string) *codes {
	return &codes{vec: vec, labels: labels}
}

// Inc counts one response with code (0 for "no response").
func (c *codes) Inc(code int) {
	if code < 0 || code >= len(c.byCode) {
		code = 0
	}
	if p := c.byCode[code].Load(); p != nil {
		(*p).Inc()
		return
	}
	c.mu.Lock()
	p := c.byCode[code].Load()
	if p == nil {
		lv := append(append([]string(nil), c.labels...), strconv.Itoa(code))
		ctr := c.vec.WithLabelValues(lv...)
		p = &ctr
		c.byCode[code].Store(p)
	}
	c.mu.Unlock()
	(*p).Inc()
}

// HTTP are the handles of one HTTP connection manager (by stat_prefix).
type HTTP struct {
	requests *codes
	grpc     *codes
	Active   prometheus.Gauge
	Duration prometheus.Observer
}

// HTTP returns the handles for a connection manager's stat_prefix.
func (r *Registry) HTTP(statPrefix string) *HTTP {
	return &HTTP{
		requests: newCodes(r.dsRequests, statPrefix),
		grpc:     newCodes(r.dsGRPC, statPrefix),
		Active:   r.dsActive.WithLabelValues(statPrefix),
		Duration: r.dsDuration.WithLabelValues(statPrefix),
	}
}

// Done counts a completed downstream request.
func (h *HTTP) Done(code int) { h.requests.Inc(code) }

// DoneGRPC counts the grpc-status of a gRPC request answered with HTTP
// 200 (the HTTP code is counted by Done as well).
func (h *HTTP) DoneGRPC(status int) { h.grpc.Inc(status) }

// Route are the handles of one route.
type Route struct {
	byClass  [6]prometheus.Counter
	Duration prometheus.Observer
}

// Route returns the handles of a route.
func (r *Registry) Route(statPrefix, vhost, route string) *Route {
	rt := &Route{Duration: r.rtDuration.WithLabelValues(statPrefix, vhost, route)}
	for i, cls := range []string{"none", "1xx", "2xx", "3xx", "4xx", "5xx"} {
		rt.byClass[i] = r.rtRequests.WithLabelValues(statPrefix, vhost, route, cls)
	}
	return rt
}

// Done counts a completed request on the route.
func (r *Route) Done(code int) {
	cls := code / 100
	if cls < 1 || cls > 5 {
		cls = 0
	}
	r.byClass[cls].Inc()
}

// Cluster are the handles of one upstream cluster.
type Cluster struct {
	requests      *codes
	Duration      prometheus.Observer
	Connections   prometheus.Counter
	ConnectFail   prometheus.Counter
	Active        prometheus.Gauge
	BytesSent     prometheus.Counter
	BytesReceived prometheus.Counter
	Retries       prometheus.Counter
	RetryOverflow prometheus.Counter
	Overflow      prometheus.Counter // max_requests
	ConnOverflow  prometheus.Counter // max_connections
}

// Cluster returns the handles of a cluster.
func (r *Registry) Cluster(name string) *Cluster {
	return &Cluster{
		requests:      newCodes(r.upRequests, name),
		Duration:      r.upDuration.WithLabelValues(name),
		Connections:   r.upCx.WithLabelValues(name),
		ConnectFail:   r.upCxFail.WithLabelValues(name),
		Active:        r.upCxActive.WithLabelValues(name),
		BytesSent:     r.upBytes.WithLabelValues(name, "sent"),
		BytesReceived: r.upBytes.WithLabelValues(name, "received"),
		Retries:       r.upRetries.WithLabelValues(name),
		RetryOverflow: r.upRetryOvf.WithLabelValues(name),
		Overflow:      r.upOverflow.WithLabelValues(name, "requests"),
		ConnOverflow:  r.upOverflow.WithLabelValues(name, "connections"),
	}
}

// Done counts an upstream request that ended with code (0: no response).
func (c *Cluster) Done(code int) { c.requests.Inc(code) }

// Listener are the handles of one listener.
type Listener struct {
	Connections prometheus.Counter
	Active      prometheus.Gauge
}

// Listener returns the handles of a listener.
func (r *Registry) Listener(name string) *Listener {
	return &Listener{Connections: r.dsCx.WithLabelValues(name), Active: r.dsCxActive.WithLabelValues(name)}
}

// TCP are the handles of one tcp_proxy (by stat_prefix).
type TCP struct {
	Connections prometheus.Counter
	Active      prometheus.Gauge
	BytesUp     prometheus.Counter // downstream → upstream
	BytesDown   prometheus.Counter // upstream → downstream
}

// TCP returns the handles of a tcp_proxy.
func (r *Registry) TCP(statPrefix string) *TCP {
	return &TCP{
		Connections: r.tcpCx.WithLabelValues(statPrefix),
		Active:      r.tcpActive.WithLabelValues(statPrefix),
		BytesUp:     r.tcpBytes.WithLabelValues(statPrefix, "upstream"),
		BytesDown:   r.tcpBytes.WithLabelValues(statPrefix, "downstream"),
	}
}

// NetworkRateLimited returns the counter of connections a local_ratelimit
// network filter closed.
func (r *Registry) NetworkRateLimited(statPrefix string) prometheus.Counter {
	return r.netLimited.WithLabelValues(statPrefix)
}
