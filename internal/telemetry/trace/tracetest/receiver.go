// Package tracetest runs a real OTLP/gRPC trace receiver for tests: a
// gRPC server on 127.0.0.1:0 implementing the OpenTelemetry collector's
// TraceService, recording every ExportTraceServiceRequest it gets.
package tracetest

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	collectorv1 "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// Span is one received span, flattened for assertions.
type Span struct {
	Service  string // the resource's service.name
	TraceID  string // hex
	SpanID   string // hex
	ParentID string // hex, "" for a root span
	Name     string
	Kind     tracev1.Span_SpanKind
	Attrs    map[string]string // values formatted with %v
	Error    bool              // status code ERROR
}

// Receiver is a running OTLP trace receiver.
type Receiver struct {
	collectorv1.UnimplementedTraceServiceServer

	// Addr is the receiver's "127.0.0.1:port".
	Addr string

	srv *grpc.Server

	mu      sync.Mutex
	spans   []Span
	exports int
	changed chan struct{} // closed and replaced on every export
	gate    chan struct{} // while non-nil, Export waits for it to close
}

// Start starts a receiver; it stops when the test ends.
func Start(t testing.TB) *Receiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Receiver{Addr: ln.Addr().String(), srv: grpc.NewServer(), changed: make(chan struct{})}
	collectorv1.RegisterTraceServiceServer(r.srv, r)
	go func() { _ = r.srv.Serve(ln) }()
	t.Cleanup(r.Stop)
	return r
}

// Stop stops the receiver, failing calls in flight.
func (r *Receiver) Stop() {
	r.Unblock()
	r.srv.Stop()
}

// Block makes exports wait (a slow collector) until Unblock.
func (r *Receiver) Block() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gate == nil {
		r.gate = make(chan struct{})
	}
}

// Unblock releases waiting exports and lets new ones through.
func (r *Receiver) Unblock() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gate != nil {
		close(r.gate)
		r.gate = nil
	}
}

// Export implements the OTLP TraceService.
func (r *Receiver) Export(ctx context.Context, req *collectorv1.ExportTraceServiceRequest) (*collectorv1.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	gate := r.gate
	r.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	var got []Span
	for _, rs := range req.GetResourceSpans() {
		service := attrs(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				got = append(got, Span{
					Service: service, TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
					ParentID: hex.EncodeToString(s.GetParentSpanId()), Name: s.GetName(), Kind: s.GetKind(),
					Attrs: attrs(s.GetAttributes()), Error: s.GetStatus().GetCode() == tracev1.Status_STATUS_CODE_ERROR,
				})
			}
		}
	}
	r.mu.Lock()
	r.spans = append(r.spans, got...)
	r.exports++
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	return &collectorv1.ExportTraceServiceResponse{}, nil
}

func attrs(kvs []*commonv1.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		v := kv.GetValue()
		switch x := v.GetValue().(type) {
		case *commonv1.AnyValue_StringValue:
			m[kv.GetKey()] = x.StringValue
		case *commonv1.AnyValue_IntValue:
			m[kv.GetKey()] = fmt.Sprint(x.IntValue)
		case *commonv1.AnyValue_BoolValue:
			m[kv.GetKey()] = fmt.Sprint(x.BoolValue)
		default:
			m[kv.GetKey()] = fmt.Sprint(v)
		}
	}
	return m
}

// Spans returns the spans received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Exports returns how many export calls completed.
func (r *Receiver) Exports() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.exports
}

// WaitSpans waits until at least n spans arrived, failing the test after
// timeout, and returns them.
func (r *Receiver) WaitSpans(t testing.TB, n int, timeout time.Duration) []Span {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		got, ch := len(r.spans), r.changed
		r.mu.Unlock()
		if got >= n {
			return r.Spans()
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("received %d spans within %v, want at least %d: %+v", got, timeout, n, r.Spans())
		}
	}
}
