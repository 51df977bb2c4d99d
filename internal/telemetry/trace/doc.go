// Package trace is the proxy's distributed tracing: it reads and writes
// the propagation headers (W3C traceparent/tracestate, B3 multi-header and
// single-header), makes the sampling decision the way Envoy's HTTP
// connection manager does (client, random and overall sampling), and
// records server and client spans with the OpenTelemetry SDK, exported over
// OTLP/gRPC.
//
// Data flow: the HTTP connection manager (internal/proxy/hcm) builds one
// *Tracer per snapshot from its `tracing` field (immutable). Each request
// calls Tracer.Start, which extracts the incoming context and decides
// whether the request is sampled; each upstream attempt calls
// Span.StartClient and ClientSpan.Inject to pass the context on. Spans of
// sampled requests go to a Provider, which is long-lived: a Manager keys
// providers by collector endpoint and service, so snapshots that keep the
// same collector share one exporter and its queue.
//
// Export never blocks a request: spans enter a bounded queue and a
// background goroutine sends them in batches; when the queue is full (the
// collector is slow or down) new spans are dropped. Provider.Exported
// counts spans sent and exports that failed.
//
// Concurrency: a Tracer is immutable and safe for concurrent use. A Span
// and its ClientSpans belong to one request and are used by one goroutine
// at a time. Manager methods are safe for concurrent use.
package trace
