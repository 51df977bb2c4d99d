// Package cors is Envoy's CORS HTTP filter (envoy.filters.http.cors): for
// routes with a CorsPolicy (typed_per_filter_config), it answers preflight
// requests from allowed origins itself and adds the CORS response headers
// to the actual requests.
package cors

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellis-mesh/trellis/internal/proxy/httpfilter"
	"github.com/trellis-mesh/trellis/internal/proxy/matcher"
	"github.com/trellis-mesh/trellis/internal/proxy/route"
)

// Builder builds CORS filters.
type Builder struct{}

var _ httpfilter.Builder = Builder{}

// TypeURL implements httpfilter.Builder.
func (Builder) TypeURL() string {
	return "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"
}

// OverrideTypeURL is the type of the per-route configuration, CorsPolicy.
func (Builder) OverrideTypeURL() string {
	return "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"
}

// Build implements httpfilter.Builder; the filter's own config is empty, as
// in Envoy: policies come from the routes.
func (Builder) Build(name string, a *anypb.Any) (httpfilter.Filter, error) {
	if err := a.UnmarshalTo(&corsv3.Cors{}); err != nil {
		return nil, err
	}
	return &filter{name: name}, nil
}

// ParseOverride implements httpfilter.Builder: a route's CorsPolicy.
func (Builder) ParseOverride(a *anypb.Any) (any, error) {
	pb := &corsv3.CorsPolicy{}
	if err := a.UnmarshalTo(pb); err != nil {
		return nil, err
	}
	p := &policy{methods: pb.GetAllowMethods(), headers: pb.GetAllowHeaders(), expose: pb.GetExposeHeaders(),
		maxAge: pb.GetMaxAge(), credentials: pb.GetAllowCredentials().GetValue(), enabled: route.All}
	var errs []error
	for i, m := range pb.GetAllowOriginStringMatch() {
		sm, err := matcher.NewString(m)
		if err != nil {
			errs = append(errs, fmt.Errorf("allow_origin_string_match[%d].%w", i, err))
			continue
		}
		p.origins = append(p.origins, sm)
	}
	if fe := pb.GetFilterEnabled(); fe != nil {
		n, err := route.RuntimeShare("filter_enabled", fe)
		if err != nil {
			errs = append(errs, err)
		}
		p.enabled = n
	}
	if pb.GetShadowEnabled() != nil {
		errs = append(errs, errors.New("shadow_enabled: not supported"))
	}
	if pb.GetAllowPrivateNetworkAccess() != nil {
		errs = append(errs, errors.New("allow_private_network_access: not supported"))
	}
	if pb.GetForwardNotMatchingPreflights() != nil {
		errs = append(errs, errors.New("forward_not_matching_preflights: not supported (they are always forwarded)"))
	}
	return p, errors.Join(errs...)
}

type policy struct {
	origins                  []matcher.String
	methods, headers, expose string
	maxAge                   string
	credentials              bool
	enabled                  route.Share
}

func (p *policy) allows(origin string) bool {
	for _, m := range p.origins {
		if m.Match(origin) {
			return true
		}
	}
	return false
}

type filter struct{ name string }

func (f *filter) Wrap(next httpfilter.Handler) httpfilter.Handler {
	return httpfilter.HandlerFunc(func(req *httpfilter.Request) error {
		p, ok := req.Override(f.name).(*policy)
		origin := req.R.Header.Get("Origin")
		if !ok || origin == "" || !p.enabled.Sample() || !p.allows(origin) {
			return next.Serve(req)
		}
		if req.R.Method == http.MethodOptions && req.R.Header.Get("Access-Control-Request-Method") != "" {
			h := http.Header{}
			h.Set("Access-Control-Allow-Origin", origin)
			if p.credentials {
				h.Set("Access-Control-Allow-Credentials", "true")
			}
			setIf(h, "Access-Control-Allow-Methods", p.methods)
			setIf(h, "Access-Control-Allow-Headers", p.headers)
			setIf(h, "Access-Control-Max-Age", p.maxAge)
			return &httpfilter.LocalReply{Status: http.StatusOK, Reason: "cors_preflight",
				Detail: "CORS preflight answered by the proxy", Header: h}
		}
		prev := req.OnResponse
		req.OnResponse = func(h http.Header) {
			if prev != nil {
				prev(h)
			}
			h.Set("Access-Control-Allow-Origin", origin)
			if p.credentials {
				h.Set("Access-Control-Allow-Credentials", "true")
			}
			setIf(h, "Access-Control-Expose-Headers", p.expose)
			if !strings.EqualFold(h.Get("Vary"), "origin") {
				h.Add("Vary", "Origin")
			}
		}
		return next.Serve(req)
	})
}

func setIf(h http.Header, k, v string) {
	if v != "" {
		h.Set(k, v)
	}
}
