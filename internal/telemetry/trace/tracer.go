package trace

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	oteltrace "go.opentelemetry.io/otel/trace"
)

// Million is 100% in the parts-per-million unit of Sampling.
const Million = 1_000_000

// Sampling holds Envoy's three sampling percentages in parts per million.
type Sampling struct {
	// Client is the share of requests carrying x-client-trace-id that are
	// traced (Envoy's client_sampling, default 100%).
	Client uint32
	// Random is the share of other requests traced (random_sampling,
	// default 100%).
	Random uint32
	// Overall caps the result of the checks above (overall_sampling,
	// default 100%).
	Overall uint32
}

// FullSampling is Envoy's default: every check at 100%.
var FullSampling = Sampling{Client: Million, Random: Million, Overall: Million}

// Tag is one of Envoy's custom_tags: a literal, a request header or an
// environment variable (read when the configuration is built).
type Tag struct {
	Name string
	// Value is the literal (or environment) value; for a header tag, the
	// value used when the header is absent.
	Value string
	// Header names the request header a tag reads; empty for literals.
	Header string
}

// LiteralTag returns a tag with a fixed value.
func LiteralTag(name, value string) Tag { return Tag{Name: name, Value: value} }

// HeaderTag returns a tag read from a request header, def when absent
// (no attribute when def is empty too).
func HeaderTag(name, header, def string) Tag {
	return Tag{Name: name, Header: http.CanonicalHeaderKey(header), Value: def}
}

// EnvironmentTag returns a tag holding environment variable env, read now,
// or def when it is unset.
func EnvironmentTag(name, env, def string) Tag {
	if v, ok := os.LookupEnv(env); ok {
		def = v
	}
	return Tag{Name: name, Value: def}
}

func (t *Tag) attr(h http.Header) (attribute.KeyValue, bool) {
	v := t.Value
	if t.Header != "" {
		if hv := h[t.Header]; len(hv) > 0 {
			v = hv[0]
		}
	}
	return attribute.String(t.Name, v), v != ""
}

// Options configure a Tracer.
type Options struct {
	// Provider receives sampled spans; required.
	Provider *Provider
	// Sampling is the connection manager's sampling (zero value: nothing
	// is sampled unless an incoming context says so; use FullSampling
	// for Envoy's defaults).
	Sampling Sampling
	// SpawnUpstream makes each upstream attempt a CLIENT span, child of
	// the SERVER span (Envoy's spawn_upstream_span). Without it the
	// request has one span, whose context the upstream receives.
	SpawnUpstream bool
	// Tags are added to every span.
	Tags []Tag
	// NodeID is recorded as the node_id attribute.
	NodeID string
	// MaxPathLength truncates url.path (Envoy's max_path_tag_length;
	// 0: 256).
	MaxPathLength int
}

// Tracer is one connection manager's tracing configuration. It is
// immutable and safe for concurrent use.
type Tracer struct {
	p     *Provider
	samp  Sampling
	spawn bool
	tags  []Tag
	node  attribute.KeyValue
	maxP  int
}

// New returns a Tracer for o.
func New(o Options) *Tracer {
	if o.MaxPathLength <= 0 {
		o.MaxPathLength = 256
	}
	return &Tracer{p: o.Provider, samp: o.Sampling, spawn: o.SpawnUpstream, tags: o.Tags,
		node: attribute.String("node_id", o.NodeID), maxP: o.MaxPathLength}
}

// Provider returns the provider spans go to.
func (t *Tracer) Provider() *Provider { return t.p }

// Request describes a downstream request for Start.
type Request struct {
	// Header is the request's header: the trace context is read from it.
	Header http.Header
	// Name is the server span's name (Envoy: the route's operation, else
	// "ingress").
	Name                                 string
	Method, Path, Authority, Proto, Peer string
	RequestID, UserAgent                 string
	Start                                time.Time
	// Internal marks a request from a loopback or private address:
	// only those may force a trace with x-envoy-force-trace (Envoy).
	Internal bool
	// Sampling overrides the tracer's (a route's tracing); nil: none.
	Sampling *Sampling
	// Tags are added to the tracer's (a route's custom_tags).
	Tags []Tag
}

// Span is a downstream request's SERVER span. The zero value is an
// inactive span whose methods do nothing.
type Span struct {
	t    *Tracer
	ctx  Context // this span: TraceID, SpanID, Sampled, State, Format
	otel oteltrace.Span
	octx context.Context // carries otel, the parent of client spans
	tags []Tag
}

// Start extracts the incoming trace context of r.Header, decides whether
// the request is sampled and starts its server span. A request that
// arrives with a sampling decision (W3C sampled flag, B3 sampled) keeps
// it, as Envoy's OpenTelemetry tracer does; otherwise the tracer's
// sampling decides. An unsampled request records nothing but still
// propagates a context (flags 00) upstream.
func (t *Tracer) Start(r *Request) Span {
	in := Extract(r.Header)
	sampled := in.Sampled
	if !in.SampledSet {
		sampled = t.decide(r)
	}
	s := Span{t: t, ctx: Context{TraceID: in.TraceID, ParentID: in.SpanID, Sampled: sampled, State: in.State, Format: in.Format, B3: in.B3, short: in.short}}
	if !in.HasIDs() {
		s.ctx.TraceID, s.ctx.ParentID, s.ctx.short = newTraceID(), oteltrace.SpanID{}, false
	}
	if !sampled {
		s.ctx.SpanID = newSpanID()
		return s
	}
	s.tags = r.Tags
	parent := context.Background()
	if in.HasIDs() {
		sc := oteltrace.SpanContextConfig{TraceID: in.TraceID, SpanID: in.SpanID, TraceFlags: oteltrace.FlagsSampled, Remote: true}
		if in.State != "" {
			sc.TraceState, _ = oteltrace.ParseTraceState(in.State) // an invalid one is passed on, not recorded
		}
		parent = oteltrace.ContextWithRemoteSpanContext(parent, oteltrace.NewSpanContext(sc))
	}
	attrs := make([]attribute.KeyValue, 0, 10+len(t.tags)+len(r.Tags))
	attrs = append(attrs,
		attribute.String("http.request.method", r.Method),
		attribute.String("url.path", truncate(r.Path, t.maxP)),
		attribute.String("server.address", hostOnly(r.Authority)),
		attribute.String("network.protocol.version", protoVersion(r.Proto)),
		attribute.String("network.peer.address", hostOnly(r.Peer)),
		attribute.String("guid:x-request-id", r.RequestID),
		attribute.String("component", "proxy"),
		t.node)
	if r.UserAgent != "" {
		attrs = append(attrs, attribute.String("user_agent.original", r.UserAgent))
	}
	attrs = appendTags(attrs, t.tags, r.Header)
	attrs = appendTags(attrs, r.Tags, r.Header)
	s.octx, s.otel = t.p.Tracer().Start(parent, r.Name, oteltrace.WithSpanKind(oteltrace.SpanKindServer),
		oteltrace.WithTimestamp(r.Start), oteltrace.WithAttributes(attrs...))
	sc := s.otel.SpanContext()
	s.ctx.TraceID, s.ctx.SpanID = sc.TraceID(), sc.SpanID()
	return s
}

// decide is Envoy's HCM decision (ConnectionManagerUtility::
// mutateTracingRequestHeader): client-directed, forced, or random, then
// capped by overall sampling. One draw serves every check, so overall
// sampling is an upper bound on the rest, as Envoy documents.
func (t *Tracer) decide(r *Request) bool {
	sp := &t.samp
	if r.Sampling != nil {
		sp = r.Sampling
	}
	n := rand.Uint32N(Million)
	var traced bool
	switch {
	case len(r.Header[hdrClientTrace]) > 0 && n < sp.Client:
		traced = true
	case len(r.Header[hdrForceTrace]) > 0 && r.Internal:
		traced = true
	default:
		traced = n < sp.Random
	}
	return traced && n < sp.Overall
}

// Active reports whether s belongs to a traced connection manager.
func (s *Span) Active() bool { return s.t != nil }

// Recording reports whether s is sampled and records.
func (s *Span) Recording() bool { return s.otel != nil }

// Context returns s's own trace context.
func (s *Span) Context() Context { return s.ctx }

// End describes how a request ended.
type End struct {
	Status       int    // HTTP status sent downstream; 0 when none was
	Flags        string // Envoy response flags, "-" for none
	Cluster      string // upstream cluster, "" when none
	UpstreamHost string
	Time         time.Time
}

// End finishes s. Only recording spans need it; it is a no-op otherwise.
func (s *Span) End(e *End) {
	if s.otel == nil {
		return
	}
	var buf [4]attribute.KeyValue // one SetAttributes call: each one copies
	attrs := append(buf[:0], attribute.String("response_flags", e.Flags))
	if e.Status != 0 {
		attrs = append(attrs, attribute.Int("http.response.status_code", e.Status))
	}
	if e.Cluster != "" {
		attrs = append(attrs, attribute.String("upstream_cluster", e.Cluster))
	}
	if e.UpstreamHost != "" {
		attrs = append(attrs, attribute.String("upstream_address", e.UpstreamHost))
	}
	s.otel.SetAttributes(attrs...)
	if e.Status >= 500 || e.Status == 0 {
		s.otel.SetStatus(codes.Error, e.Flags)
	}
	s.otel.End(oteltrace.WithTimestamp(e.Time))
}

// ClientSpan is one upstream attempt. With spawn_upstream_span off it is
// the server span's context, recording nothing of its own.
type ClientSpan struct {
	ctx  Context
	otel oteltrace.Span
}

// Upstream describes an upstream attempt for StartClient.
type Upstream struct {
	Cluster   string
	Host      string // "ip:port" of the chosen endpoint
	Authority string // the Host header sent
	Method    string
	Path      string
	Start     time.Time
}

// StartClient starts the span of one upstream attempt.
func (s *Span) StartClient(u *Upstream) ClientSpan {
	c := ClientSpan{ctx: s.ctx}
	if s.t == nil || !s.t.spawn {
		return c
	}
	c.ctx.ParentID = s.ctx.SpanID
	if s.otel == nil {
		c.ctx.SpanID = newSpanID()
		return c
	}
	t := s.t
	attrs := make([]attribute.KeyValue, 0, 8+len(t.tags)+len(s.tags))
	attrs = append(attrs,
		attribute.String("http.request.method", u.Method),
		attribute.String("url.path", truncate(u.Path, t.maxP)),
		attribute.String("server.address", hostOnly(u.Authority)),
		attribute.String("network.peer.address", hostOnly(u.Host)),
		attribute.String("upstream_cluster", u.Cluster),
		attribute.String("upstream_address", u.Host),
		attribute.String("component", "proxy"),
		t.node)
	if _, port, err := net.SplitHostPort(u.Host); err == nil {
		if n, err := strconv.Atoi(port); err == nil {
			attrs = append(attrs, attribute.Int("network.peer.port", n))
		}
	}
	attrs = appendTags(attrs, t.tags, nil)
	attrs = appendTags(attrs, s.tags, nil)
	_, c.otel = t.p.Tracer().Start(s.octx, "router "+u.Cluster+" egress", oteltrace.WithSpanKind(oteltrace.SpanKindClient),
		oteltrace.WithTimestamp(u.Start), oteltrace.WithAttributes(attrs...))
	c.ctx.SpanID = c.otel.SpanContext().SpanID()
	return c
}

// Inject writes the attempt's context into the upstream request header.
func (c *ClientSpan) Inject(h http.Header) { c.ctx.Inject(h) }

// Recording reports whether c records a span (End must be called).
func (c *ClientSpan) Recording() bool { return c.otel != nil }

// End finishes the attempt now: status is the upstream's response status,
// or 0 with err when none arrived.
func (c *ClientSpan) End(status int, err error) {
	if c.otel == nil {
		return
	}
	switch {
	case err != nil:
		c.otel.SetAttributes(attribute.String("error.type", errorType(err)))
		c.otel.SetStatus(codes.Error, err.Error())
	default:
		c.otel.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= 500 {
			c.otel.SetStatus(codes.Error, "")
		}
	}
	c.otel.End()
	c.otel = nil
}

func errorType(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return "upstream_error"
}

func appendTags(attrs []attribute.KeyValue, tags []Tag, h http.Header) []attribute.KeyValue {
	for i := range tags {
		t := &tags[i]
		if t.Header != "" && h == nil {
			continue // header tags describe the downstream request: server span only
		}
		if a, ok := t.attr(h); ok {
			attrs = append(attrs, a)
		}
	}
	return attrs
}

func newTraceID() oteltrace.TraceID {
	var id oteltrace.TraceID
	for !id.IsValid() {
		hi, lo := rand.Uint64(), rand.Uint64()
		for i := range 8 {
			id[i], id[8+i] = byte(hi>>(56-8*i)), byte(lo>>(56-8*i))
		}
	}
	return id
}

func newSpanID() oteltrace.SpanID {
	var id oteltrace.SpanID
	for !id.IsValid() {
		v := rand.Uint64()
		for i := range 8 {
			id[i] = byte(v >> (56 - 8*i))
		}
	}
	return id
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// hostOnly strips a port from "host:port"; other strings are returned
// as they are.
func hostOnly(hp string) string {
	if h, _, err := net.SplitHostPort(hp); err == nil {
		return h
	}
	return hp
}

func protoVersion(p string) string {
	switch p {
	case "HTTP/1.1":
		return "1.1"
	case "HTTP/2.0":
		return "2"
	case "HTTP/1.0":
		return "1.0"
	}
	return p
}
