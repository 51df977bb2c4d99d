package proxy_test

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/service/metrics/v3"
	"google.golang.org/grpc"
)

// receiver is a real metrics service on 127.0.0.1:0 that hands every
// message it receives to a channel and reports stream ends.
type receiver struct {
	metricsv3.UnimplementedMetricsServiceServer
	msgs  chan *metricsv3.StreamMetricsMessage
	ended chan error
}

func (r *receiver) StreamMetrics(s metricsv3.MetricsService_StreamMetricsServer) error {
	for {
		m, err := s.Recv()
		if err != nil {
			r.ended <- err
			if errors.Is(err, io.EOF) {
				return s.SendAndClose(&metricsv3.StreamMetricsResponse{})
			}
			return err
		}
		r.msgs <- m
	}
}

func startReceiver(t *testing.T) (*receiver, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{msgs: make(chan *metricsv3.StreamMetricsMessage, 100), ended: make(chan error, 10)}
	g := grpc.NewServer()
	metricsv3.RegisterMetricsServiceServer(g, r)
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	return r, ln.Addr().String()
}

const statsSinkBootstrap = `
node: {id: default/web-1}
stats_flush_interval: 0.1s
stats_sinks:
- name: envoy.stat_sinks.metrics_service
  typed_config:
    "@type": type.googleapis.com/envoy.config.metrics.v3.MetricsServiceConfig
    transport_api_version: V3
    grpc_service: {envoy_grpc: {cluster_name: {{.Cluster}}}}
static_resources:
  clusters:
  - name: metrics
    type: STATIC
    load_assignment:
      cluster_name: metrics
      endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .Addr}}}}]}]
`

// TestStatsSink: a bootstrap's metrics_service sink pushes the proxy's
// Prometheus families to the cluster it names, the node on the first
// message of the stream, every stats_flush_interval, until Shutdown.
func TestStatsSink(t *testing.T) {
	r, addr := startReceiver(t)
	p := startProxy(t, statsSinkBootstrap, map[string]string{"Cluster": "metrics", "Addr": addr})
	next := func() *metricsv3.StreamMetricsMessage {
		t.Helper()
		select {
		case m := <-r.msgs:
			return m
		case <-time.After(10 * time.Second):
			t.Fatal("no push within 10s")
			return nil
		}
	}
	first := next()
	if id := first.GetIdentifier().GetNode().GetId(); id != "default/web-1" {
		t.Errorf("first message's node id %q, want default/web-1", id)
	}
	names := map[string]bool{}
	for _, f := range first.GetEnvoyMetrics() {
		names[f.GetName()] = true
	}
	for _, want := range []string{"trellis_cluster_upstream_mtls", "process_start_time_seconds", "trellis_cluster_upstream_connections_total"} {
		if !names[want] {
			t.Errorf("first push lacks %s", want)
		}
	}
	if second := next(); second.GetIdentifier() != nil {
		t.Errorf("second message repeats the identifier")
	}
	if err := apply(t, p, statsSinkBootstrap, map[string]string{"Cluster": "metrics", "Addr": addr}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.ended:
		t.Errorf("re-applying the same sink ended its stream: %v", err)
	default:
	}
	p.Shutdown(t.Context())
	select {
	case <-r.ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream outlived Shutdown")
	}
}

const otherSink = `
node: {id: x}
stats_sinks:
- name: envoy.access_loggers.file
  typed_config: {"@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: /dev/null}
`

func TestStatsSinkErrors(t *testing.T) {
	for _, tc := range []struct {
		name, tmpl, want string
	}{
		{"unknown cluster", strings.Replace(statsSinkBootstrap, "{{.Cluster}}", "nope", 1),
			`stats_sinks[0].typed_config.grpc_service.envoy_grpc.cluster_name: no cluster "nope"`},
		{"flush interval", strings.Replace(statsSinkBootstrap, "0.1s", "600s", 1), "stats_flush_interval: value must be inside range"},
		{"other sink", otherSink, "stats_sinks[0].typed_config: only envoy.stat_sinks.metrics_service"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startProxy(t, `node: {id: x}`, nil)
			err := apply(t, p, tc.tmpl, map[string]string{"Cluster": "metrics", "Addr": "127.0.0.1:1"})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}
