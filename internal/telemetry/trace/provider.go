package trace

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	oteltrace "go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Defaults of ProviderOptions.
const (
	DefaultQueueSize     = 2048
	DefaultBatchTimeout  = time.Second
	DefaultExportTimeout = 10 * time.Second
	// shutdownTimeout bounds the final flush of a provider a new
	// configuration no longer uses.
	shutdownTimeout = 5 * time.Second
)

// ProviderOptions name a collector and the resource spans are reported
// under. They are comparable: the Manager shares one Provider among equal
// options.
type ProviderOptions struct {
	// Endpoint is the collector's OTLP/gRPC address, "host:port". The
	// connection is plaintext.
	Endpoint string
	// ServiceName is the resource's service.name (Envoy's
	// OpenTelemetryConfig.service_name); empty means "trellis-proxy".
	ServiceName string
	// NodeID is the proxy's node id, reported as the resource attribute
	// node_id (spans carry it too).
	NodeID string
	// QueueSize bounds the spans waiting for export (0: DefaultQueueSize).
	// When full, new spans are dropped; requests never wait.
	QueueSize int
	// BatchTimeout is the longest a span waits before a batch is sent
	// (0: DefaultBatchTimeout).
	BatchTimeout time.Duration
	// ExportTimeout bounds one export call (0: DefaultExportTimeout).
	ExportTimeout time.Duration
}

// Provider is one OTLP exporter with its bounded batch queue. It starts
// (creating the gRPC client and the batching goroutine) with the first
// sampled span, so a configuration that is built but never serves (a
// validation, a rejected update) costs nothing.
type Provider struct {
	opts ProviderOptions
	log  *slog.Logger

	once   sync.Once
	tp     *sdktrace.TracerProvider
	tracer oteltrace.Tracer
	exp    loggingExporter
}

// Tracer returns the OpenTelemetry tracer of p, starting p on first use.
func (p *Provider) Tracer() oteltrace.Tracer {
	p.once.Do(p.start)
	return p.tracer
}

func (p *Provider) start() {
	o := p.opts
	exp, err := otlptracegrpc.New(context.Background(),
		otlptracegrpc.WithEndpoint(o.Endpoint),
		otlptracegrpc.WithInsecure(),
		otlptracegrpc.WithTimeout(o.ExportTimeout),
		// A short retry: a collector that is down costs dropped spans,
		// not a batching goroutine stuck for a minute.
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: true, InitialInterval: 200 * time.Millisecond,
			MaxInterval: time.Second, MaxElapsedTime: o.ExportTimeout}))
	if err != nil {
		p.log.Error("tracing disabled: cannot create the OTLP exporter", "endpoint", o.Endpoint, "error", err)
		p.tracer = noop.NewTracerProvider().Tracer("")
		return
	}
	p.exp.SpanExporter = exp
	res := resource.NewSchemaless(attribute.String("service.name", o.ServiceName), attribute.String("node_id", o.NodeID))
	p.tp = sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		// The connection manager decides sampling before it starts a
		// span; only sampled spans reach the SDK.
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithBatcher(&p.exp,
			sdktrace.WithMaxQueueSize(o.QueueSize),
			sdktrace.WithMaxExportBatchSize(min(512, o.QueueSize)),
			sdktrace.WithBatchTimeout(o.BatchTimeout),
			sdktrace.WithExportTimeout(o.ExportTimeout)))
	p.tracer = p.tp.Tracer("github.com/trellis-mesh/trellis/internal/proxy")
}

// Exported returns how many spans p has handed to the collector and how
// many exports failed.
func (p *Provider) Exported() (spans, failures int64) {
	return p.exp.spans.Load(), p.exp.failures.Load()
}

// shutdown flushes queued spans (within ctx) and stops p.
func (p *Provider) shutdown(ctx context.Context) error {
	p.once.Do(func() { p.tracer = noop.NewTracerProvider().Tracer("") }) // never started: nothing to flush
	if p.tp == nil {
		return nil
	}
	return p.tp.Shutdown(ctx)
}

// loggingExporter reports export failures to the proxy's log (once per
// outage, then once on recovery) instead of OpenTelemetry's global error
// handler, and counts what was sent.
type loggingExporter struct {
	sdktrace.SpanExporter
	log      *slog.Logger
	endpoint string
	failing  atomic.Bool
	spans    atomic.Int64
	failures atomic.Int64
}

func (e *loggingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	if err != nil {
		e.failures.Add(1)
		if !e.failing.Swap(true) {
			e.log.Warn("cannot export spans; dropping them until the collector answers", "endpoint", e.endpoint, "error", err)
		}
		return nil
	}
	e.spans.Add(int64(len(spans)))
	if e.failing.Swap(false) {
		e.log.Info("exporting spans again", "endpoint", e.endpoint)
	}
	return nil
}

// Manager owns the Providers of a proxy. Providers outlive configuration
// snapshots: a snapshot asks for one with Provider, and Commit (after the
// snapshot is in force) stops those no snapshot asked for since the
// previous Commit.
type Manager struct {
	log *slog.Logger

	mu        sync.Mutex
	providers map[ProviderOptions]*Provider
	used      map[ProviderOptions]bool
	closing   sync.WaitGroup
}

// NewManager returns a Manager logging to log (nil: slog.Default()).
func NewManager(log *slog.Logger) *Manager {
	if log == nil {
		log = slog.Default()
	}
	return &Manager{log: log.With("component", "tracing"), providers: map[ProviderOptions]*Provider{}, used: map[ProviderOptions]bool{}}
}

// Provider returns the provider for o, shared with earlier callers that
// passed equal options.
func (m *Manager) Provider(o ProviderOptions) *Provider {
	if o.ServiceName == "" {
		o.ServiceName = "trellis-proxy"
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.BatchTimeout <= 0 {
		o.BatchTimeout = DefaultBatchTimeout
	}
	if o.ExportTimeout <= 0 {
		o.ExportTimeout = DefaultExportTimeout
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.used[o] = true
	p, ok := m.providers[o]
	if !ok {
		p = &Provider{opts: o, log: m.log.With("endpoint", o.Endpoint)}
		p.exp.log, p.exp.endpoint = p.log, o.Endpoint
		m.providers[o] = p
	}
	return p
}

// Commit stops, in the background after a bounded flush, every provider
// not asked for since the previous Commit.
func (m *Manager) Commit() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for o, p := range m.providers {
		if m.used[o] {
			continue
		}
		delete(m.providers, o)
		m.closing.Add(1)
		go func() {
			defer m.closing.Done()
			ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			_ = p.shutdown(ctx)
		}()
	}
	clear(m.used)
}

// Shutdown flushes and stops every provider, giving up when ctx ends.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	ps := m.providers
	m.providers = map[ProviderOptions]*Provider{}
	m.mu.Unlock()
	var errs []error
	for _, p := range ps {
		errs = append(errs, p.shutdown(ctx))
	}
	m.closing.Wait()
	return errors.Join(errs...)
}
