// Package httpfilter is the contract between the HTTP connection manager and
// its HTTP filters (Envoy's http_filters): a filter wraps the next handler
// once per configuration snapshot, never per request, and answers a
// request itself by returning a *LocalReply.
//
// Builders are listed explicitly (hcm.Filters), never registered by init.
package httpfilter

import (
	"fmt"
	"net/http"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellis-mesh/trellis/internal/proxy/route"
	"github.com/trellis-mesh/trellis/internal/telemetry/accesslog"
)

// LocalReply is the error a filter returns to answer the request itself.
// Nothing may have been written to the response. The connection manager
// sends Status (or, for gRPC requests, GRPCStatus when set, else the mapped
// status) with Reason in x-trellis-reason and Detail as the body.
type LocalReply struct {
	Status     int
	GRPCStatus int // 0: derived from Status
	Flags      accesslog.Flags
	Reason     string
	Detail     string
	Header     http.Header // extra response headers, may be nil
}

func (l *LocalReply) Error() string { return fmt.Sprintf("%d %s: %s", l.Status, l.Reason, l.Detail) }

// Request is one request passing through the filter chain. It is owned by
// the connection manager and reused; filters must not keep it.
type Request struct {
	W     http.ResponseWriter
	R     *http.Request
	Route *route.Route
	// RemoteAddr is the client address as the connection manager trusts
	// it ("ip:port" or "ip"): the peer, or the x-forwarded-for entry
	// chosen by xff_num_trusted_hops (Envoy's downstream remote address).
	RemoteAddr string
	// Flags collects response flags a filter sets without answering
	// (e.g. DI for an injected delay).
	Flags *accesslog.Flags
	// State is the connection manager's per-request state, for its own
	// terminal handler; filters must not use it.
	State any
	// OnResponse, if set, is called with the response headers just before
	// they are sent, whoever answers (upstream, route or local reply). A
	// filter that sets it must call the previous value too.
	OnResponse func(http.Header)
}

// Override returns the route's typed_per_filter_config for the filter
// named name, or nil.
func (r *Request) Override(name string) any {
	if r.Route == nil {
		return nil
	}
	return r.Route.PerFilter[name]
}

// Handler serves one request. A non-nil error means nothing was written;
// a *LocalReply is sent as the answer, any other error answers 500.
type Handler interface{ Serve(req *Request) error }

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(req *Request) error

// Serve calls f.
func (f HandlerFunc) Serve(req *Request) error { return f(req) }

// Filter is one configured filter instance. Wrap is called once per
// snapshot.
type Filter interface{ Wrap(next Handler) Handler }

// Builder makes filters of one type from their Envoy configuration.
type Builder interface {
	// TypeURL is the type of the filter's typed_config.
	TypeURL() string
	// Build parses and validates a typed_config; errors name fields.
	Build(name string, cfg *anypb.Any) (Filter, error)
	// ParseOverride parses a typed_per_filter_config value for a route.
	ParseOverride(cfg *anypb.Any) (any, error)
}

// Registry finds builders by type URL.
type Registry map[string]Builder

// NewRegistry lists builders explicitly.
func NewRegistry(bs ...Builder) Registry {
	r := Registry{}
	for _, b := range bs {
		r[b.TypeURL()] = b
	}
	return r
}

// ParseOverride parses a typed_per_filter_config value with the builder of
// its type; it satisfies route.OverrideParser.
func (r Registry) ParseOverride(_ string, a *anypb.Any) (any, error) {
	b, ok := r[a.GetTypeUrl()]
	if !ok {
		// Some filters take a per-route message of another type than their
		// own configuration (CORS: Cors and CorsPolicy).
		for _, cand := range r {
			if o, isO := cand.(interface{ OverrideTypeURL() string }); isO && o.OverrideTypeURL() == a.GetTypeUrl() {
				b, ok = cand, true
				break
			}
		}
	}
	if !ok {
		return nil, fmt.Errorf("type %q: no such filter", a.GetTypeUrl())
	}
	return b.ParseOverride(a)
}
