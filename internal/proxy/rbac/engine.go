package rbac

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
)

// Action is what an engine does with a matched policy (RBAC.action).
type Action uint8

// The actions, as Envoy names them.
const (
	// Allow admits a request only when a policy matches.
	Allow Action = iota
	// Deny refuses a request when a policy matches.
	Deny
	// Log admits every request; a match is only reported.
	Log
)

// String returns Envoy's name of a.
func (a Action) String() string {
	switch a {
	case Allow:
		return "ALLOW"
	case Deny:
		return "DENY"
	}
	return "LOG"
}

// Input are the facts a policy is evaluated against. The zero value is a
// connection about which nothing is known.
type Input struct {
	// Request is the HTTP request, nil when a connection is evaluated (the
	// network filter): header and url_path rules then never match.
	Request *http.Request
	// Path is the request's path without query, as route matching sees it
	// (after the connection manager's path normalization); url_path rules
	// match it.
	Path string
	// DirectRemote is the address of the downstream peer of the connection
	// (direct_remote_ip, source_ip).
	DirectRemote netip.Addr
	// Remote is the client address as the connection manager trusts it
	// (x-forwarded-for with xff_num_trusted_hops, unless
	// use_remote_address); remote_ip matches it. For a connection it is
	// DirectRemote.
	Remote netip.Addr
	// Local is the downstream connection's local address
	// (destination_ip, destination_port).
	Local netip.AddrPort
	// ServerName is the TLS server name (SNI) the client asked for, empty
	// without TLS or SNI.
	ServerName string
	// Peer is the verified certificate the downstream peer presented
	// (mutual TLS), nil when there is none; authenticated principals
	// match it.
	Peer *x509.Certificate
}

// Engine is one compiled RBAC. It is immutable.
type Engine struct {
	action   Action
	policies []policy // sorted by name
}

type policy struct {
	name        string
	details     string // rbac_access_denied_matched_policy[name]
	permissions []rule
	principals  []rule
}

// NoPolicy is the policy index of a decision no policy matched.
const NoPolicy = -1

// Decision is the result of one evaluation.
type Decision struct {
	// Allowed reports whether the request may continue. Under Log it is
	// always true.
	Allowed bool
	// Policy is the index of the matched policy (the first by name), or
	// NoPolicy; see Engine.PolicyName.
	Policy int
}

// Compile builds an engine from rules. Errors name fields below rules
// (e.g. `policies["admin"].permissions[0].header`) and are all reported.
func Compile(rules *rbacv3.RBAC) (*Engine, error) {
	e := &Engine{}
	var errs []error
	switch rules.GetAction() {
	case rbacv3.RBAC_ALLOW:
		e.action = Allow
	case rbacv3.RBAC_DENY:
		e.action = Deny
	case rbacv3.RBAC_LOG:
		e.action = Log
	default:
		errs = append(errs, fmt.Errorf("action: %v not supported", rules.GetAction()))
	}
	if rules.GetAuditLoggingOptions() != nil {
		errs = append(errs, errors.New("audit_logging_options: not supported"))
	}
	names := make([]string, 0, len(rules.GetPolicies()))
	for n := range rules.GetPolicies() {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		p, err := compilePolicy(n, rules.GetPolicies()[n], fmt.Sprintf("policies[%q]", n))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		e.policies = append(e.policies, p)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return e, nil
}

func compilePolicy(name string, pb *rbacv3.Policy, path string) (policy, error) {
	p := policy{name: name, details: "rbac_access_denied_matched_policy[" + name + "]"}
	var errs []error
	if strings.IndexFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		// The name goes into a response header and the access log.
		errs = append(errs, fmt.Errorf("%s: policy name has control characters", path))
	}
	if pb.GetCondition() != nil || pb.GetCheckedCondition() != nil || pb.GetCelConfig() != nil {
		errs = append(errs, fmt.Errorf("%s: condition, checked_condition and cel_config (CEL) are not supported", path))
	}
	if len(pb.GetPermissions()) == 0 {
		errs = append(errs, fmt.Errorf("%s.permissions: at least one permission is required", path))
	}
	if len(pb.GetPrincipals()) == 0 {
		errs = append(errs, fmt.Errorf("%s.principals: at least one principal is required", path))
	}
	for i, pm := range pb.GetPermissions() {
		r, err := compilePermission(pm, fmt.Sprintf("%s.permissions[%d]", path, i))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.permissions = append(p.permissions, r)
	}
	for i, pr := range pb.GetPrincipals() {
		r, err := compilePrincipal(pr, fmt.Sprintf("%s.principals[%d]", path, i))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.principals = append(p.principals, r)
	}
	return p, errors.Join(errs...)
}

// Action returns the engine's action.
func (e *Engine) Action() Action { return e.action }

// PolicyName returns the name of policy i, or "none" for NoPolicy.
func (e *Engine) PolicyName(i int) string {
	if i < 0 || i >= len(e.policies) {
		return "none"
	}
	return e.policies[i].name
}

// DenyDetails returns Envoy's response code details for a denial by policy
// i: rbac_access_denied_matched_policy[NAME], or [none] for NoPolicy.
func (e *Engine) DenyDetails(i int) string {
	if i < 0 || i >= len(e.policies) {
		return "rbac_access_denied_matched_policy[none]"
	}
	return e.policies[i].details
}

// Evaluate decides on in.
func (e *Engine) Evaluate(in *Input) Decision {
	matched := NoPolicy
	for i := range e.policies {
		if e.policies[i].matches(in) {
			matched = i
			break
		}
	}
	switch e.action {
	case Allow:
		return Decision{Allowed: matched != NoPolicy, Policy: matched}
	case Deny:
		return Decision{Allowed: matched == NoPolicy, Policy: matched}
	}
	return Decision{Allowed: true, Policy: matched}
}

func (p *policy) matches(in *Input) bool {
	return anyMatches(p.permissions, in) && anyMatches(p.principals, in)
}

func anyMatches(rs []rule, in *Input) bool {
	for _, r := range rs {
		if r.match(in) {
			return true
		}
	}
	return false
}
