package ads

import (
	"context"
	"sync"

	"google.golang.org/grpc"

	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
	"github.com/trellis-mesh/trellis/internal/telemetry/metricsink"
)

// metricsSource is a proxy whose metrics can be pushed (*proxy.Proxy).
type metricsSource interface{ Metrics() *metrics.Registry }

// runMetricsSink pushes the proxy's metrics to the control plane on conn
// (Envoy's metrics service, as a stats sink pointed at the xDS cluster
// would) until ctx ends or the returned stop is called; stop waits for
// the pusher to end.
func (c *Client) runMetricsSink(ctx context.Context, conn *grpc.ClientConn) (stop func()) {
	src, ok := c.opts.Proxy.(metricsSource)
	interval := c.opts.MetricsInterval
	if d := c.opts.Base.GetStatsFlushInterval(); interval == 0 && d != nil {
		interval = d.AsDuration()
	}
	if !ok || interval < 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &metricsink.Pusher{Conn: conn, Node: c.opts.Node, Gatherer: src.Metrics().Prom, Interval: interval, Logger: c.log.With("component", "metrics-sink")}
	var wg sync.WaitGroup
	wg.Go(func() { p.Run(ctx) })
	return func() {
		cancel()
		wg.Wait()
	}
}
