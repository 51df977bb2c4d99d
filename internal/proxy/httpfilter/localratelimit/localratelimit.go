// Package localratelimit is Envoy's HTTP local rate limit filter
// (envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit): a token
// bucket per filter (and one per route that overrides it) admits requests;
// the others are answered 429 without reaching the upstream.
//
// As in Envoy, the filter does nothing until filter_enabled is set, and
// only counts (shadow mode) until filter_enforced is set.
package localratelimit

import (
	"errors"
	"fmt"
	"net/http"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	lrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellis-mesh/trellis/internal/proxy/httpfilter"
	"github.com/trellis-mesh/trellis/internal/proxy/ratelimit"
	"github.com/trellis-mesh/trellis/internal/proxy/route"
	"github.com/trellis-mesh/trellis/internal/telemetry/accesslog"
)

// Builder builds local rate limit filters.
type Builder struct{}

var _ httpfilter.Builder = Builder{}

// TypeURL implements httpfilter.Builder.
func (Builder) TypeURL() string {
	return "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
}

// Build implements httpfilter.Builder.
func (Builder) Build(name string, a *anypb.Any) (httpfilter.Filter, error) {
	c, err := parse(a)
	if err != nil {
		return nil, err
	}
	return &filter{name: name, cfg: c}, nil
}

// ParseOverride implements httpfilter.Builder: a route's LocalRateLimit has
// its own bucket and settings.
func (Builder) ParseOverride(a *anypb.Any) (any, error) { return parse(a) }

type config struct {
	statPrefix string
	bucket     *ratelimit.Bucket // nil: no bucket (nothing is limited)
	enabled    route.Share
	enforced   route.Share
	status     int
	headers    http.Header
}

func parse(a *anypb.Any) (*config, error) {
	pb := &lrlv3.LocalRateLimit{}
	if err := a.UnmarshalTo(pb); err != nil {
		return nil, err
	}
	c := &config{statPrefix: pb.GetStatPrefix(), status: http.StatusTooManyRequests, headers: http.Header{}}
	var errs []error
	if pb.GetTokenBucket() != nil {
		b, err := ratelimit.NewBucket(pb.GetTokenBucket())
		if err != nil {
			errs = append(errs, err)
		}
		c.bucket = b
	}
	var err error
	if c.enabled, err = route.RuntimeShare("filter_enabled", pb.GetFilterEnabled()); err != nil {
		errs = append(errs, err)
	}
	if c.enforced, err = route.RuntimeShare("filter_enforced", pb.GetFilterEnforced()); err != nil {
		errs = append(errs, err)
	}
	if s := pb.GetStatus(); s != nil {
		c.status = int(s.GetCode())
		if c.status < 400 || c.status > 599 {
			errs = append(errs, fmt.Errorf("status.code: %d is not an error status", c.status))
		}
	}
	for i, h := range pb.GetResponseHeadersToAdd() {
		if h.GetAppendAction() != corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD && h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			errs = append(errs, fmt.Errorf("response_headers_to_add[%d].append_action: only APPEND_IF_EXISTS_OR_ADD and OVERWRITE_IF_EXISTS_OR_ADD are supported", i))
			continue
		}
		c.headers.Add(h.GetHeader().GetKey(), h.GetHeader().GetValue())
	}
	return c, errors.Join(errs...)
}

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
		if c.bucket == nil || !c.enabled.Sample() || c.bucket.Allow() {
			return next.Serve(req)
		}
		if !c.enforced.Sample() {
			return next.Serve(req) // shadow mode: counted only
		}
		return &httpfilter.LocalReply{Status: c.status, Flags: accesslog.RateLimited, Reason: "local_rate_limited",
			Detail: fmt.Sprintf("local rate limit %q exceeded", c.statPrefix), Header: c.headers}
	})
}
