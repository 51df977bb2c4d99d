// Package netrbac is Envoy's network RBAC filter
// (envoy.extensions.filters.network.rbac.v3.RBAC): it allows or closes a
// downstream connection with the policies of internal/proxy/rbac, using
// what is known at L4: addresses, ports, the TLS server name and the
// verified peer certificate.
//
// The listener evaluates a chain's filters once per connection, after the
// TLS handshake of a TLS chain and before the terminal filter (HTTP
// connection manager or tcp_proxy) sees a byte. A Filter is immutable and
// safe for concurrent use.
package netrbac

import (
	"errors"
	"log/slog"

	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"

	"github.com/trellis-mesh/trellis/internal/proxy/rbac"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

// TypeURL is the type of the filter's typed_config.
const TypeURL = "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"

// Filter is one configured network RBAC filter.
type Filter struct {
	// StatPrefix is the filter's stat_prefix.
	StatPrefix string

	rules       *rbac.Engine // nil: every connection is allowed
	shadow      *rbac.Engine // nil: no shadow rules
	rulesStats  *metrics.RBAC
	shadowStats *metrics.RBAC
}

// New compiles a network RBAC; m (may be nil) receives its metrics.
// Errors name fields below the filter's typed_config.
//
// enforcement_type ONE_TIME_ON_FIRST_BYTE (the default) and CONTINUOUS are
// both accepted and behave the same: with no dynamic metadata (the only
// thing that changes while a connection lives) a decision cannot change,
// so it is made once, when the connection is set up. That is no later
// than Envoy's first byte, and for server-first protocols earlier.
func New(pb *netrbacv3.RBAC, m *metrics.Registry) (*Filter, error) {
	f := &Filter{StatPrefix: pb.GetStatPrefix()}
	var errs []error
	if f.StatPrefix == "" {
		errs = append(errs, errors.New("stat_prefix: required"))
	}
	if pb.GetMatcher() != nil || pb.GetShadowMatcher() != nil {
		errs = append(errs, errors.New("matcher, shadow_matcher: the matcher API is not supported (use rules, shadow_rules)"))
	}
	if pb.GetDelayDeny() != nil {
		errs = append(errs, errors.New("delay_deny: not supported"))
	}
	switch pb.GetEnforcementType() {
	case netrbacv3.RBAC_ONE_TIME_ON_FIRST_BYTE, netrbacv3.RBAC_CONTINUOUS:
	default:
		errs = append(errs, errors.New("enforcement_type: unknown value"))
	}
	if r := pb.GetRules(); r != nil {
		e, err := rbac.Compile(r)
		if err != nil {
			errs = append(errs, decode.PrefixErrors("rules", err))
		}
		f.rules = e
		f.rulesStats = m.RBAC(metrics.RBACNetwork, f.StatPrefix, metrics.RBACEnforce)
	}
	if r := pb.GetShadowRules(); r != nil {
		e, err := rbac.Compile(r)
		if err != nil {
			errs = append(errs, decode.PrefixErrors("shadow_rules", err))
		}
		f.shadow = e
		f.shadowStats = m.RBAC(metrics.RBACNetwork, f.StatPrefix+pb.GetShadowRulesStatPrefix(), metrics.RBACShadow)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return f, nil
}

// Allow evaluates the connection described by in: shadow rules are
// counted and logged (at debug level on log), the rules decide. in.Request
// must be nil.
func (f *Filter) Allow(in *rbac.Input, log *slog.Logger) bool {
	if f.shadow != nil {
		d := f.shadow.Evaluate(in)
		f.shadowStats.Count(d.Allowed)
		logDecision(log, "shadow rules decision", f, f.shadow, d, in)
	}
	if f.rules == nil {
		return true
	}
	d := f.rules.Evaluate(in)
	f.rulesStats.Count(d.Allowed)
	if !d.Allowed {
		logDecision(log, "connection denied", f, f.rules, d, in)
	} else if f.rules.Action() == rbac.Log && d.Policy != rbac.NoPolicy {
		logDecision(log, "rules matched (LOG)", f, f.rules, d, in)
	}
	return d.Allowed
}

func logDecision(log *slog.Logger, msg string, f *Filter, e *rbac.Engine, d rbac.Decision, in *rbac.Input) {
	result := "allowed"
	if !d.Allowed {
		result = "denied"
	}
	var peer string
	if in.Peer != nil && len(in.Peer.URIs) > 0 {
		peer = in.Peer.URIs[0].String()
	}
	log.Debug(msg, "component", "rbac", "stat_prefix", f.StatPrefix, "action", e.Action().String(),
		"result", result, "policy", e.PolicyName(d.Policy), "details", detailsOf(e, d),
		"remote", in.DirectRemote.String(), "local", in.Local.String(), "sni", in.ServerName, "peer", peer)
}

func detailsOf(e *rbac.Engine, d rbac.Decision) string {
	if d.Allowed {
		return ""
	}
	return e.DenyDetails(d.Policy)
}
