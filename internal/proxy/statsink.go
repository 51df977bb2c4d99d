package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	metricsconfv3 "github.com/envoyproxy/go-control-plane/envoy/config/metrics/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster"
	"github.com/trellis-mesh/trellis/internal/proxy/cluster/lb"
	"github.com/trellis-mesh/trellis/internal/telemetry/metricsink"
)

// metricsServiceSink is the one stats sink implemented: Envoy's metrics
// service over gRPC to a cluster of the configuration.
const metricsServiceSink = "envoy.stat_sinks.metrics_service"

// statsSinkConfig is one checked stats_sinks entry.
type statsSinkConfig struct{ cluster string }

// checkStatsSinks checks b's stats_sinks against the clusters of set.
func checkStatsSinks(b *bootstrapv3.Bootstrap, set *cluster.Set) ([]statsSinkConfig, time.Duration, error) {
	interval := metricsink.DefaultInterval
	if d := b.GetStatsFlushInterval(); d != nil {
		interval = d.AsDuration()
		// Envoy: stats_flush_interval must be at least 1 ms and at most 5 min.
		if interval < time.Millisecond || interval > 5*time.Minute {
			return nil, 0, fmt.Errorf("stats_flush_interval: %s is outside [1ms, 5m]", interval)
		}
	}
	var out []statsSinkConfig
	for i, s := range b.GetStatsSinks() {
		path := fmt.Sprintf("stats_sinks[%d]", i)
		var cfg metricsconfv3.MetricsServiceConfig
		tc := s.GetTypedConfig()
		if tc == nil {
			return nil, 0, fmt.Errorf("%s.typed_config: required (%s)", path, metricsServiceSink)
		}
		if err := tc.UnmarshalTo(&cfg); err != nil {
			return nil, 0, fmt.Errorf("%s.typed_config: only %s (envoy.config.metrics.v3.MetricsServiceConfig) is supported, got %s", path, metricsServiceSink, tc.GetTypeUrl())
		}
		if v := cfg.GetTransportApiVersion(); v != corev3.ApiVersion_V3 && v != corev3.ApiVersion_AUTO {
			return nil, 0, fmt.Errorf("%s.typed_config.transport_api_version: only V3", path)
		}
		name := cfg.GetGrpcService().GetEnvoyGrpc().GetClusterName()
		switch {
		case name == "":
			return nil, 0, fmt.Errorf("%s.typed_config.grpc_service.envoy_grpc.cluster_name: required", path)
		case set.Get(name) == nil:
			return nil, 0, fmt.Errorf("%s.typed_config.grpc_service.envoy_grpc.cluster_name: no cluster %q", path, name)
		}
		out = append(out, statsSinkConfig{cluster: name})
	}
	return out, interval, nil
}

// statsSinks runs the configured sinks. A configuration applied with the
// same sinks, interval and node keeps them running.
type statsSinks struct {
	mu     sync.Mutex
	key    string
	cancel context.CancelFunc
	wg     sync.WaitGroup
	conns  []*grpc.ClientConn
}

// update makes the sinks of b run (after b was applied).
func (p *Proxy) updateStatsSinks(b *bootstrapv3.Bootstrap, sinks []statsSinkConfig, interval time.Duration) {
	s := &p.statsSinks
	s.mu.Lock()
	defer s.mu.Unlock()
	node, _ := proto.Marshal(b.GetNode())
	key := fmt.Sprint(sinks, interval, string(node))
	if key == s.key {
		return
	}
	s.stopLocked()
	s.key = key
	if len(sinks) == 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	for _, sc := range sinks {
		conn, err := grpc.NewClient("passthrough:///"+sc.cluster,
			grpc.WithTransportCredentials(insecure.NewCredentials()), // TLS, if any, is the cluster's
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return p.dialCluster(ctx, sc.cluster) }))
		if err != nil { // only for a malformed target, which this is not
			p.log.Error("stats sink", "cluster", sc.cluster, "error", err)
			continue
		}
		s.conns = append(s.conns, conn)
		pu := &metricsink.Pusher{Conn: conn, Node: b.GetNode(), Gatherer: p.metrics.Prom, Interval: interval, Logger: p.log.With("stats_sink", sc.cluster)}
		s.wg.Go(func() { pu.Run(ctx) })
	}
}

// stopStatsSinks ends the sinks (Shutdown).
func (p *Proxy) stopStatsSinks() {
	p.statsSinks.mu.Lock()
	defer p.statsSinks.mu.Unlock()
	p.statsSinks.stopLocked()
}

func (s *statsSinks) stopLocked() {
	if s.cancel != nil {
		s.cancel()
		s.wg.Wait()
		s.cancel = nil
	}
	for _, c := range s.conns {
		c.Close()
	}
	s.conns, s.key = nil, ""
}

// dialCluster connects to a host of a cluster of the current
// configuration, with the cluster's TLS if it has one.
func (p *Proxy) dialCluster(ctx context.Context, name string) (net.Conn, error) {
	snap := p.current.Load()
	if snap == nil {
		return nil, errors.New("no configuration")
	}
	cl := snap.clusters.Get(name)
	if cl == nil {
		return nil, fmt.Errorf("no cluster %q", name)
	}
	h := cl.Pick(&lb.Request{})
	if h == nil {
		return nil, fmt.Errorf("cluster %q: no healthy host", name)
	}
	return cl.Dial(ctx, h.Address)
}

// mtlsCollector reports, per cluster of the current configuration,
// whether the proxy presents a client certificate to it (mutual TLS):
// trellis_cluster_upstream_mtls, read by the control plane for
// `trellis edges`. The answer is computed once per snapshot.
type mtlsCollector struct {
	p    *Proxy
	mu   sync.Mutex
	snap *snapshot
	vals []prometheus.Metric
}

var descMTLS = prometheus.NewDesc("trellis_cluster_upstream_mtls",
	"1 when the cluster's upstream TLS context presents a client certificate (mutual TLS), else 0.", []string{"cluster"}, nil)

// Describe implements prometheus.Collector.
func (c *mtlsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descMTLS }

// Collect implements prometheus.Collector.
func (c *mtlsCollector) Collect(ch chan<- prometheus.Metric) {
	snap := c.p.current.Load()
	if snap == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if snap != c.snap {
		c.snap, c.vals = snap, nil
		for _, pc := range snap.bootstrap.GetStaticResources().GetClusters() {
			v := 0.0
			var ut tlsv3.UpstreamTlsContext
			if tc := pc.GetTransportSocket().GetTypedConfig(); tc != nil && tc.UnmarshalTo(&ut) == nil {
				if ctc := ut.GetCommonTlsContext(); len(ctc.GetTlsCertificates()) > 0 || len(ctc.GetTlsCertificateSdsSecretConfigs()) > 0 {
					v = 1
				}
			}
			c.vals = append(c.vals, prometheus.MustNewConstMetric(descMTLS, prometheus.GaugeValue, v, pc.GetName()))
		}
	}
	for _, m := range c.vals {
		ch <- m
	}
}
