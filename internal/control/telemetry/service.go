package telemetry

import (
	"errors"
	"io"
	"log/slog"

	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/service/metrics/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Service is Envoy's metrics service
// (envoy.service.metrics.v3.MetricsService/StreamMetrics) feeding an
// Aggregator: Envoy proxies with a metrics_service stats sink and Trellis
// proxies push to it. The first message of a stream must carry
// identifier.node.id, the proxy's namespace/name.
//
// The node id is taken as sent: whoever can reach the endpoint can report
// numbers for any proxy. Serve it where the xDS endpoint is served and
// protected.
type Service struct {
	metricsv3.UnimplementedMetricsServiceServer
	agg *Aggregator
	log *slog.Logger
}

// NewService returns the metrics service of agg (log may be nil).
func NewService(agg *Aggregator, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{agg: agg, log: log}
}

// Register adds the service to a gRPC server.
func (s *Service) Register(g *grpc.Server) { metricsv3.RegisterMetricsServiceServer(g, s) }

// StreamMetrics takes the pushes of one proxy until it closes the stream.
func (s *Service) StreamMetrics(stream metricsv3.MetricsService_StreamMetricsServer) error {
	node := ""
	defer func() {
		if node != "" {
			s.agg.Forget(node)
		}
	}()
	misses := 0 // consecutive pushes that could not be attributed
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&metricsv3.StreamMetricsResponse{})
		}
		if err != nil {
			return err
		}
		if id := msg.GetIdentifier().GetNode().GetId(); id != "" {
			node = id
		}
		if node == "" {
			return status.Error(codes.InvalidArgument, "identifier.node.id: required on the first message")
		}
		if err := s.agg.Ingest(node, msg.GetEnvoyMetrics()); err != nil {
			// A proxy may push before the control plane has seen its
			// registration: only a miss that lasts is worth a warning.
			if misses++; misses == 3 {
				s.log.Warn("metrics of an unknown proxy are not attributed", "node", node, "error", err)
			}
		} else {
			misses = 0
		}
	}
}
