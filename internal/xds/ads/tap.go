package ads

import (
	"context"
	"sync"

	"google.golang.org/grpc"

	"github.com/trellis-mesh/trellis/internal/telemetry/tap"
)

// tapSource is a proxy whose requests can be tapped (*proxy.Proxy).
type tapSource interface{ Tap() *tap.Tap }

// runTelemetry starts, on conn, the streams beside ADS: the metrics push
// and the tap stream (trellis tap, docs/tap.md). stop ends both and
// waits for them.
func (c *Client) runTelemetry(ctx context.Context, conn *grpc.ClientConn) (stop func()) {
	stopSink := c.runMetricsSink(ctx, conn)
	src, ok := c.opts.Proxy.(tapSource)
	if !ok || src.Tap() == nil {
		return stopSink
	}
	ctx, cancel := context.WithCancel(ctx)
	bo := c.opts.Backoff // a copy: its own sequence
	bo.attempt = 0
	var wg sync.WaitGroup
	wg.Go(func() {
		src.Tap().Run(ctx, conn, c.opts.Node.GetId(), tap.RunOptions{Backoff: bo.Next, Logger: c.log.With("component", "tap")})
	})
	return func() {
		cancel()
		wg.Wait()
		stopSink()
	}
}
