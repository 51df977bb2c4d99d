// Package localratelimit is Envoy's HTTP local rate limit filter
// (envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit): a token
// bucket per filter (and one per route that overrides it), plus one per
// configured descriptor, admits requests; the others are answered 429
// without reaching the upstream.
//
// As in Envoy, the filter does nothing until filter_enabled is set, and
// only counts (shadow mode) until filter_enforced is set. Descriptors come
// from the rate_limits actions of the route and its virtual host (or of
// the filter itself) whose stage equals the filter's.
package localratelimit

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellis-mesh/trellis/internal/proxy/httpfilter"
	"github.com/trellis-mesh/trellis/internal/proxy/ratelimit"
	"github.com/trellis-mesh/trellis/internal/proxy/route"
	"github.com/trellis-mesh/trellis/internal/telemetry/accesslog"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
)

// Builder builds local rate limit filters.
type Builder struct {
	// Metrics receives trellis_ratelimit_decisions_total; nil counts
	// nothing.
	Metrics *metrics.Registry
}

var _ httpfilter.Builder = Builder{}

// TypeURL implements httpfilter.Builder.
func (Builder) TypeURL() string {
	return "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
}

// Build implements httpfilter.Builder.
func (b Builder) Build(name string, a *anypb.Any) (httpfilter.Filter, error) {
	c, err := parse(a, b.Metrics)
	if err != nil {
		return nil, err
	}
	return &filter{name: name, cfg: c}, nil
}

// ParseOverride implements httpfilter.Builder: a route's LocalRateLimit has
// its own buckets and settings.
func (b Builder) ParseOverride(a *anypb.Any) (any, error) { return parse(a, b.Metrics) }

// The x-ratelimit-* headers of draft-polli-ratelimit-headers-03, which
// Envoy's enable_x_ratelimit_headers DRAFT_VERSION_03 sends.
var (
	hdrLimit     = http.CanonicalHeaderKey("x-ratelimit-limit")
	hdrRemaining = http.CanonicalHeaderKey("x-ratelimit-remaining")
	hdrReset     = http.CanonicalHeaderKey("x-ratelimit-reset")
)

type filter struct {
	name string
	cfg  *config
}

func (f *filter) Wrap(next httpfilter.Handler) httpfilter.Handler {
	return httpfilter.HandlerFunc(func(req *httpfilter.Request) error {
		c := f.cfg
		if o, ok := req.Override(f.name).(*config); ok {
			c = o
		}
		if c.limiter == nil || !c.enabled.Sample() {
			return next.Serve(req)
		}
		// Room for a few descriptors on the stack; more spill to the heap.
		var entries [8]ratelimit.Entry
		var ends [4]int
		var ds ratelimit.Descriptors
		if c.limiter.HasDescriptors() {
			// Passed and returned by value, not through a pointer, so the
			// arrays stay on the stack.
			ds.Entries, ds.Ends = c.appendDescriptors(entries[:0], ends[:0], req)
		}
		l := c.limiter
		if c.perConn != nil {
			l = c.perConn.For(req.R.RemoteAddr)
		}
		ok, b := l.Allow(&ds)
		if ok {
			c.stats.OK()
		} else if !c.enforced.Sample() {
			c.stats.Shadow() // shadow mode: counted only
			ok = true
		}
		if ok {
			if c.xHeaders && b != nil {
				setXHeadersOnResponse(req, b)
			}
			return next.Serve(req)
		}
		c.stats.Limited()
		h := c.headers
		if c.xHeaders && b != nil {
			h = h.Clone()
			setXHeaders(h, b)
		}
		return &httpfilter.LocalReply{Status: c.status, Flags: accesslog.RateLimited, Reason: "local_rate_limited",
			Detail: fmt.Sprintf("local rate limit %q exceeded", c.statPrefix), Header: h}
	})
}

// appendDescriptors builds the request's descriptors from the rate_limits
// that apply (the filter's own, else the route's and the virtual host's
// per vh_rate_limits) with the filter's stage.
func (c *config) appendDescriptors(entries []ratelimit.Entry, ends []int, req *httpfilter.Request) ([]ratelimit.Entry, []int) {
	in := route.RateLimitInput{Request: req.R, RemoteAddr: req.R.RemoteAddr}
	if c.hasOwn {
		return c.appendFrom(entries, ends, c.own, &in)
	}
	rt := req.Route
	if rt == nil {
		return entries, ends
	}
	in.Cluster = rt.Cluster
	if c.vhMode != vhIgnore && rt.VirtualHost != nil && (c.vhMode == vhInclude || len(rt.RateLimits) == 0) {
		entries, ends = c.appendFrom(entries, ends, rt.VirtualHost.RateLimits, &in)
	}
	return c.appendFrom(entries, ends, rt.RateLimits, &in)
}

func (c *config) appendFrom(entries []ratelimit.Entry, ends []int, rls []route.RateLimit, in *route.RateLimitInput) ([]ratelimit.Entry, []int) {
	for i := range rls {
		if rls[i].Stage != c.stage {
			continue
		}
		var ok bool
		if entries, ok = rls[i].Append(entries, in); ok {
			ends = append(ends, len(entries))
		}
	}
	return entries, ends
}

func setXHeaders(h http.Header, b *ratelimit.Bucket) {
	limit, remaining, reset := b.State()
	h.Set(hdrLimit, strconv.FormatInt(limit, 10))
	h.Set(hdrRemaining, strconv.FormatInt(remaining, 10))
	h.Set(hdrReset, strconv.FormatInt(int64((reset+time.Second-1)/time.Second), 10))
}

// setXHeadersOnResponse adds the x-ratelimit-* headers to whatever
// response the request gets, with the bucket's state at admission.
func setXHeadersOnResponse(req *httpfilter.Request, b *ratelimit.Bucket) {
	limit, remaining, reset := b.State()
	prev := req.OnResponse
	req.OnResponse = func(h http.Header) {
		h.Set(hdrLimit, strconv.FormatInt(limit, 10))
		h.Set(hdrRemaining, strconv.FormatInt(remaining, 10))
		h.Set(hdrReset, strconv.FormatInt(int64((reset+time.Second-1)/time.Second), 10))
		if prev != nil {
			prev(h)
		}
	}
}
