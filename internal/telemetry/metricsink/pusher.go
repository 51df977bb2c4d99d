// Package metricsink is the proxy side of Envoy's metrics service
// (envoy.service.metrics.v3.MetricsService/StreamMetrics): a Pusher
// gathers a Prometheus registry every interval and streams the families
// to a receiver, the way Envoy's envoy.stat_sinks.metrics_service sink
// does. The proxy uses it for a bootstrap's stats_sinks and the ADS
// client for the control plane's golden metrics.
//
// Counters are sent cumulative (Envoy's default; report_counters_as_deltas
// is not implemented), the node on the first message of each stream.
package metricsink

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/service/metrics/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultInterval is Envoy's default stats_flush_interval.
const DefaultInterval = 10 * time.Second

// unimplementedBackoff is how long a Pusher waits before trying again a
// receiver that does not implement the metrics service.
const unimplementedBackoff = 5 * time.Minute

// Pusher streams a gatherer's metrics to a metrics service.
type Pusher struct {
	// Conn reaches the receiver. Required; the Pusher does not close it.
	Conn grpc.ClientConnInterface
	// Node identifies the proxy (its id: the Dataplane's namespace/name).
	// Required.
	Node *corev3.Node
	// Gatherer is what is sent. Required.
	Gatherer prometheus.Gatherer
	// Interval between pushes; zero means DefaultInterval.
	Interval time.Duration
	// Logger receives the pusher's logs (default: discarded).
	Logger *slog.Logger
}

// Run pushes until ctx ends. A broken stream is opened again after an
// interval; a receiver that answers Unimplemented is tried again after
// five minutes.
func (p *Pusher) Run(ctx context.Context) {
	if p.Interval <= 0 {
		p.Interval = DefaultInterval
	}
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	client := metricsv3.NewMetricsServiceClient(p.Conn)
	for ctx.Err() == nil {
		err := p.stream(ctx, client)
		if ctx.Err() != nil {
			return
		}
		wait := p.Interval
		if status.Code(err) == codes.Unimplemented {
			wait = unimplementedBackoff
			p.Logger.Debug("the receiver has no metrics service", "retry_in", wait)
		} else {
			p.Logger.Debug("metrics stream ended", "error", err, "retry_in", wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// stream holds one stream, pushing every interval (the first push right
// away).
func (p *Pusher) stream(ctx context.Context, client metricsv3.MetricsServiceClient) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := client.StreamMetrics(sctx)
	if err != nil {
		return err
	}
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	first := true
	for {
		fams, err := p.Gatherer.Gather()
		if err != nil && len(fams) == 0 {
			p.Logger.Warn("gathering metrics failed", "error", err)
		}
		msg := &metricsv3.StreamMetricsMessage{EnvoyMetrics: fams}
		if first {
			msg.Identifier = &metricsv3.StreamMetricsMessage_Identifier{Node: p.Node}
		}
		if err := s.Send(msg); err != nil {
			if errors.Is(err, io.EOF) {
				// The receiver ended the stream; its status says why.
				_, err = s.CloseAndRecv()
			}
			return err
		}
		first = false
		select {
		case <-ctx.Done():
			_, _ = s.CloseAndRecv()
			return ctx.Err()
		case <-t.C:
		}
	}
}
