package localratelimit

import (
	"errors"
	"fmt"
	"net/http"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	commonrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	lrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellis-mesh/trellis/internal/proxy/ratelimit"
	"github.com/trellis-mesh/trellis/internal/proxy/route"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
)

// vhMode is vh_rate_limits: how a virtual host's rate_limits combine with
// its routes'.
type vhMode uint8

const (
	vhOverride vhMode = iota // the virtual host's only when the route has none (Envoy's default)
	vhInclude                // both
	vhIgnore                 // the route's only
)

// config is one parsed LocalRateLimit: the filter's or a route's.
type config struct {
	statPrefix string
	limiter    *ratelimit.Limiter // nil: no bucket at all (nothing is limited)
	// perConn, set by local_rate_limit_per_downstream_connection, gives
	// each downstream connection its own copy of limiter's buckets.
	perConn  *ratelimit.PerConnection
	enabled  route.Share
	enforced route.Share
	status   int
	headers  http.Header
	stats    *metrics.RateLimit // nil counts nothing

	stage    uint32
	vhMode   vhMode
	xHeaders bool // enable_x_ratelimit_headers: DRAFT_VERSION_03
	// own is the filter's own rate_limits; when set they replace the
	// route's and the virtual host's.
	own    []route.RateLimit
	hasOwn bool
}

func parse(a *anypb.Any, m *metrics.Registry) (*config, error) {
	pb := &lrlv3.LocalRateLimit{}
	if err := a.UnmarshalTo(pb); err != nil {
		return nil, err
	}
	c := &config{statPrefix: pb.GetStatPrefix(), status: http.StatusTooManyRequests, headers: http.Header{}, stage: pb.GetStage()}
	var errs []error
	var def *ratelimit.Bucket
	if pb.GetTokenBucket() != nil {
		b, err := ratelimit.NewBucket(pb.GetTokenBucket())
		if err != nil {
			errs = append(errs, err)
		}
		def = b
	}
	always := true // Envoy: always_consume_default_token_bucket defaults to true
	if v := pb.GetAlwaysConsumeDefaultTokenBucket(); v != nil {
		always = v.GetValue()
	}
	if def != nil || len(pb.GetDescriptors()) > 0 {
		l, err := ratelimit.NewLimiter(def, always, pb.GetDescriptors())
		if err != nil {
			errs = append(errs, err)
		}
		c.limiter = l
		if err == nil && pb.GetLocalRateLimitPerDownstreamConnection() {
			tb, ds := pb.GetTokenBucket(), pb.GetDescriptors()
			c.perConn = ratelimit.NewPerConnection(func() *ratelimit.Limiter {
				var d *ratelimit.Bucket
				if tb != nil {
					d, _ = ratelimit.NewBucket(tb) // validated above
				}
				l, _ := ratelimit.NewLimiter(d, always, ds)
				return l
			})
		}
	}
	if c.stage > 10 {
		errs = append(errs, fmt.Errorf("stage: %d is above 10", c.stage))
	}
	switch pb.GetVhRateLimits() {
	case commonrlv3.VhRateLimitsOptions_OVERRIDE:
	case commonrlv3.VhRateLimitsOptions_INCLUDE:
		c.vhMode = vhInclude
	case commonrlv3.VhRateLimitsOptions_IGNORE:
		c.vhMode = vhIgnore
	default:
		errs = append(errs, fmt.Errorf("vh_rate_limits: unknown value %d", pb.GetVhRateLimits()))
	}
	switch pb.GetEnableXRatelimitHeaders() {
	case commonrlv3.XRateLimitHeadersRFCVersion_OFF:
	case commonrlv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03:
		c.xHeaders = true
	default:
		errs = append(errs, fmt.Errorf("enable_x_ratelimit_headers: unknown value %d", pb.GetEnableXRatelimitHeaders()))
	}
	if rls := pb.GetRateLimits(); len(rls) > 0 {
		own, err := route.CompileRateLimits(rls)
		if err != nil {
			errs = append(errs, err)
		}
		c.own, c.hasOwn = own, true
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
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if m != nil {
		c.stats = m.RateLimit(metrics.RateLimitHTTP, c.statPrefix)
	}
	return c, nil
}
