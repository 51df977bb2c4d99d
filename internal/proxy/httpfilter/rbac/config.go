// Package rbac is Envoy's RBAC HTTP filter
// (envoy.extensions.filters.http.rbac.v3.RBAC): it allows or denies each
// request with the policies of internal/proxy/rbac, answers a denial with
// 403 (gRPC: PERMISSION_DENIED) naming the policy, evaluates shadow_rules
// without enforcing them, and takes per-route RBACPerRoute overrides.
//
// A configured filter is immutable; Wrap is called once per snapshot.
package rbac

import (
	"errors"
	"fmt"
	"log/slog"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellis-mesh/trellis/internal/proxy/httpfilter"
	engine "github.com/trellis-mesh/trellis/internal/proxy/rbac"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

// Builder builds RBAC filters.
type Builder struct {
	// Metrics receives trellis_rbac_decisions_total; nil counts nothing.
	Metrics *metrics.Registry
	// Log receives shadow-rule and LOG-action decisions at debug level;
	// nil means slog.Default().
	Log *slog.Logger
}

var _ httpfilter.Builder = Builder{}

// TypeURL implements httpfilter.Builder.
func (Builder) TypeURL() string {
	return "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
}

// OverrideTypeURL is the type of the filter's typed_per_filter_config.
func (Builder) OverrideTypeURL() string {
	return "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute"
}

// Build implements httpfilter.Builder.
func (b Builder) Build(name string, a *anypb.Any) (httpfilter.Filter, error) {
	pb := &rbacv3.RBAC{}
	if err := a.UnmarshalTo(pb); err != nil {
		return nil, err
	}
	c, err := b.parse(pb)
	if err != nil {
		return nil, err
	}
	log := b.Log
	if log == nil {
		log = slog.Default()
	}
	return &filter{name: name, cfg: c, log: log.With("component", "rbac", "filter", name)}, nil
}

// ParseOverride implements httpfilter.Builder: an RBACPerRoute replaces the
// filter's rules and shadow rules on its route; one without rbac turns the
// filter off there.
func (b Builder) ParseOverride(a *anypb.Any) (any, error) {
	pb := &rbacv3.RBACPerRoute{}
	if !a.MessageIs(pb) {
		return nil, fmt.Errorf("type %q: the RBAC filter takes RBACPerRoute per route", a.GetTypeUrl())
	}
	if err := a.UnmarshalTo(pb); err != nil {
		return nil, err
	}
	if pb.GetRbac() == nil {
		return &config{disabled: true}, nil
	}
	c, err := b.parse(pb.GetRbac())
	if err != nil {
		return nil, decode.PrefixErrors("rbac", err)
	}
	return c, nil
}

// config is one parsed RBAC: the filter's or a route's.
type config struct {
	rules       *engine.Engine // nil: no rules, every request is allowed
	shadow      *engine.Engine // nil: no shadow rules
	rulesStats  *metrics.RBAC
	shadowStats *metrics.RBAC
	rulesPrefix string
	shadowPfx   string
	disabled    bool // RBACPerRoute without rbac
}

func (b Builder) parse(pb *rbacv3.RBAC) (*config, error) {
	c := &config{rulesPrefix: pb.GetRulesStatPrefix(), shadowPfx: pb.GetShadowRulesStatPrefix()}
	var errs []error
	if pb.GetMatcher() != nil || pb.GetShadowMatcher() != nil {
		errs = append(errs, errors.New("matcher, shadow_matcher: the matcher API is not supported (use rules, shadow_rules)"))
	}
	if pb.GetTrackPerRuleStats() {
		errs = append(errs, errors.New("track_per_rule_stats: not supported"))
	}
	if r := pb.GetRules(); r != nil {
		e, err := engine.Compile(r)
		if err != nil {
			errs = append(errs, decode.PrefixErrors("rules", err))
		}
		c.rules = e
		c.rulesStats = b.Metrics.RBAC(metrics.RBACHTTP, c.rulesPrefix, metrics.RBACEnforce)
	}
	if r := pb.GetShadowRules(); r != nil {
		e, err := engine.Compile(r)
		if err != nil {
			errs = append(errs, decode.PrefixErrors("shadow_rules", err))
		}
		c.shadow = e
		c.shadowStats = b.Metrics.RBAC(metrics.RBACHTTP, c.shadowPfx, metrics.RBACShadow)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}
