package translator

import (
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httprbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

// RBAC filter names, as Envoy spells them.
const (
	httpRBACFilterName = "envoy.filters.http.rbac"
	netRBACFilterName  = "envoy.filters.network.rbac"
)

// access is what the AccessPolicies targeting the Services served on one
// inbound port say, as up to three Envoy RBAC engines, evaluated in this
// order: audit (shadow_rules of DENY: reports, never blocks), deny (DENY),
// allow (ALLOW: only what a policy matches passes; with no policies it
// refuses everything, which is how a mesh default of DENY is enforced). A
// nil engine is left out.
//
// Each rule of a policy is one Envoy policy named "<namespace>/<name>/rule/<i>",
// so a refusal's reason, rbac_access_denied_matched_policy[...], names the
// AccessPolicy and its rule.
type access struct {
	audit, deny, allow *rbacv3.RBAC
	net                []*listenerv3.Filter // the engines as network filters (TCP ports)
	foreign            map[string]bool      // other meshes whose trust domain a source reads
	// msg is the protocol filter with its topic or subject policy (and,
	// for Kafka, the policy filter after it) of a kafka or nats port on
	// which some rule names topics or subjects; nil otherwise
	// (access_messaging.go).
	msg []*listenerv3.Filter
}

// accessKey caches the access of an inbound (inboundKey: the listener's
// port, its service port and the first Service serving it).
type accessKey struct{ inboundKey }

// accessOf returns the access of an inbound, built once per Index for
// inbounds served by one Service, and records what it reads for
// DependsOn. A nil *access enforces nothing.
func (b *builder) accessOf(key inboundKey, servers []*service, proto v1alpha1.Protocol, statPrefix string) *access {
	for _, s := range servers {
		b.res.access[s.key] = true
	}
	var a *access
	if v, ok := b.m.cache.Load(accessKey{key}); ok && !uncached && len(servers) <= 1 {
		a = v.(*access)
	} else {
		a = b.accessFor(servers, key.servicePort, proto)
		if a != nil && !isHTTP(proto) {
			a.net = a.networkFilters(statPrefix)
		}
		if !uncached && len(servers) <= 1 {
			v, _ := b.m.cache.LoadOrStore(accessKey{key}, a)
			a = v.(*access)
		}
	}
	if a != nil {
		for m := range a.foreign {
			b.res.foreign[m] = true
		}
	}
	return a
}

// network returns a fresh list of a's network filters.
func (a *access) network() []*listenerv3.Filter {
	if a == nil {
		return nil
	}
	return slices.Clone(a.net)
}

// accessFor computes the access of an inbound port on service port sp
// with protocol proto, served by servers. Policies targeting any of them
// apply (a port served by two Services gets the policies of both).
func (b *builder) accessFor(servers []*service, sp int32, proto v1alpha1.Protocol) *access {
	sec := b.m.sec
	if sec == nil {
		return nil
	}
	var pols []*v1alpha1.AccessPolicy
	for _, s := range servers {
		for _, p := range sec.access[s.key] {
			if !slices.Contains(pols, p) {
				pols = append(pols, p)
			}
		}
	}
	slices.SortFunc(pols, func(a, b *v1alpha1.AccessPolicy) int { return compareKeys(keyOf(a), keyOf(b)) })
	a := &access{foreign: map[string]bool{}}
	engines := map[v1alpha1.AccessAction]**rbacv3.RBAC{
		v1alpha1.AccessAudit: &a.audit, v1alpha1.AccessDeny: &a.deny, v1alpha1.AccessAllow: &a.allow,
	}
	for _, p := range pols {
		e := engines[p.Spec.Action]
		if e == nil {
			continue
		}
		if *e == nil {
			action := rbacv3.RBAC_DENY
			if p.Spec.Action == v1alpha1.AccessAllow {
				action = rbacv3.RBAC_ALLOW
			}
			*e = &rbacv3.RBAC{Action: action, Policies: map[string]*rbacv3.Policy{}}
		}
		for i := range p.Spec.Rules {
			if pol := a.rbacPolicy(sec, p, &p.Spec.Rules[i], sp, proto); pol != nil {
				(*e).Policies[v1alpha1.NamespaceOf(p)+"/"+p.Name+"/rule/"+strconv.Itoa(i)] = pol
			}
		}
	}
	if a.allow == nil && sec.deny {
		a.allow = &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{}}
	}
	if a.audit == nil && a.deny == nil && a.allow == nil {
		return nil
	}
	if isMessaging(proto) && len(servers) > 0 {
		a.msg = a.messagingPolicy(sec, pols, servers[0], sp, proto)
	}
	return a
}

// rbacPolicy is one rule of p as an Envoy policy on a listener of service
// port sp, or nil when the rule cannot match there: its operations are
// all for other ports, or (ALLOW on a TCP port) need HTTP fields.
func (a *access) rbacPolicy(sec *security, p *v1alpha1.AccessPolicy, r *v1alpha1.AccessRule, sp int32, proto v1alpha1.Protocol) *rbacv3.Policy {
	pol := &rbacv3.Policy{}
	if len(r.To) == 0 {
		pol.Permissions = []*rbacv3.Permission{anyPermission()}
	}
	for i := range r.To {
		if pm, ok := operation(&r.To[i], sp, proto, p.Spec.Action); ok {
			pol.Permissions = append(pol.Permissions, pm)
		}
	}
	if len(pol.Permissions) == 0 {
		return nil
	}
	mesh := v1alpha1.MeshOf(p)
	for _, f := range r.From {
		switch {
		case f.Service != "":
			pol.Principals = append(pol.Principals, authenticated(&matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Exact{Exact: a.sourceID(sec, mesh, &f)},
			}))
		case f.AnyAuthenticated:
			pol.Principals = append(pol.Principals, authenticated(nil))
		case f.Any:
			pol.Principals = append(pol.Principals, &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}})
		default:
			for _, blk := range f.IPBlocks {
				pfx, err := netip.ParsePrefix(blk)
				if err != nil {
					continue // validated: never
				}
				pol.Principals = append(pol.Principals, &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{
					DirectRemoteIp: &corev3.CidrRange{AddressPrefix: pfx.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(pfx.Bits()))},
				}})
			}
		}
	}
	if len(pol.Principals) == 0 {
		return nil
	}
	return pol
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func authenticated(name *matcherv3.StringMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{
		Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: name},
	}}
}

func anyPermission() *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
}

// operation is one `to` entry as a permission on a listener of service
// port sp with protocol proto, for a policy with action. Ports are
// decided here, since the listener serves one service port: an entry for
// other ports does not match (ok false), and the ports condition is left
// out otherwise. On a TCP port, an entry with HTTP fields never matches
// when the action is ALLOW (an ALLOW rule allows no connection on it);
// otherwise (DENY, AUDIT) those fields are dropped, which denies more,
// never less. An entry with kafka or nats fields is decided per request
// by the protocol filter (messagingPermission).
func operation(o *v1alpha1.AccessOperation, sp int32, proto v1alpha1.Protocol, action v1alpha1.AccessAction) (*rbacv3.Permission, bool) {
	if len(o.Ports) > 0 && !slices.Contains(o.Ports, sp) {
		return nil, false
	}
	if o.Kafka != nil || o.NATS != nil {
		return messagingPermission(o, proto, action)
	}
	http, allow := isHTTP(proto), action == v1alpha1.AccessAllow
	httpFields := len(o.Methods)+len(o.Paths)+len(o.Hosts)+len(o.Headers)+len(o.GRPCMethods) > 0
	if !http {
		if httpFields && allow {
			return nil, false
		}
		return anyPermission(), true
	}
	var and []*rbacv3.Permission
	var or []*rbacv3.Permission
	for _, m := range o.Methods {
		or = append(or, headerPermission(":method", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: m}}))
	}
	and = appendOr(and, or)
	or = nil
	for _, p := range o.Paths {
		or = append(or, pathPermission(pathMatcher(p)))
	}
	and = appendOr(and, or)
	or = nil
	for _, h := range o.Hosts {
		or = append(or, headerPermission(":authority", regexMatcher(hostRegex(h))))
	}
	and = appendOr(and, or)
	for _, h := range o.Headers {
		and = append(and, headerMatch(h))
	}
	or = nil
	for _, g := range o.GRPCMethods {
		m := &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "/" + g.Service + "/"}}
		if g.Method != "" {
			m = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "/" + g.Service + "/" + g.Method}}
		}
		or = append(or, pathPermission(m))
	}
	and = appendOr(and, or)
	switch len(and) {
	case 0:
		return anyPermission(), true
	case 1:
		return and[0], true
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: and}}}, true
}

// appendOr appends to and the permission matching one of or, if any.
func appendOr(and, or []*rbacv3.Permission) []*rbacv3.Permission {
	switch len(or) {
	case 0:
		return and
	case 1:
		return append(and, or[0])
	}
	return append(and, &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: or}}})
}

func headerPermission(name string, m *matcherv3.StringMatcher) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{
		Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: m},
	}}}
}

func pathPermission(m *matcherv3.StringMatcher) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
		Rule: &matcherv3.PathMatcher_Path{Path: m},
	}}}
}

func regexMatcher(re string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: re}}}
}

// pathMatcher matches the (normalized) path as p says. A template
// becomes its regular expression (v1alpha1.PathTemplateRegex).
func pathMatcher(p v1alpha1.AccessPathMatch) *matcherv3.StringMatcher {
	switch {
	case p.Exact != "":
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: p.Exact}}
	case p.Prefix != "":
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: p.Prefix}}
	case p.Template != "":
		re, err := v1alpha1.PathTemplateRegex(p.Template)
		if err != nil {
			re = "$^" // validated: never; match nothing rather than everything
		}
		return regexMatcher(strings.TrimSuffix(strings.TrimPrefix(re, "^"), "$"))
	}
	return regexMatcher(p.Regex)
}

// hostRegex matches a Host or :authority with an optional port, ignoring
// case: "api.example.com", or "*.example.com" for any name ending in
// ".example.com".
func hostRegex(h string) string {
	if rest, ok := strings.CutPrefix(h, "*."); ok {
		return `(?i)[^:]+\.` + regexp.QuoteMeta(rest) + `(?::[0-9]+)?`
	}
	return `(?i)` + regexp.QuoteMeta(h) + `(?::[0-9]+)?`
}

// headerMatch is one header condition; Invert is a not_rule, so that a
// missing header matches an inverted one.
func headerMatch(h v1alpha1.AccessHeaderMatch) *rbacv3.Permission {
	hm := &routev3.HeaderMatcher{Name: strings.ToLower(h.Name)}
	switch {
	case h.Present:
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
	case h.Exact != "":
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: h.Exact}}}
	case h.Prefix != "":
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: h.Prefix}}}
	default:
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: regexMatcher(h.Regex)}
	}
	pm := &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: hm}}
	if h.Invert {
		pm = &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: pm}}
	}
	return pm
}

// httpFilters are a's engines as HTTP RBAC filters, before the router.
func (a *access) httpFilters(statPrefix string) []*hcmv3.HttpFilter {
	if a == nil {
		return nil
	}
	var out []*hcmv3.HttpFilter
	add := func(cfg *httprbacv3.RBAC) {
		out = append(out, &hcmv3.HttpFilter{Name: httpRBACFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(cfg)}})
	}
	if a.audit != nil {
		add(&httprbacv3.RBAC{ShadowRules: a.audit, ShadowRulesStatPrefix: statPrefix + ".access_audit."})
	}
	if a.deny != nil {
		add(&httprbacv3.RBAC{Rules: a.deny, RulesStatPrefix: statPrefix + ".access_deny."})
	}
	if a.allow != nil {
		add(&httprbacv3.RBAC{Rules: a.allow, RulesStatPrefix: statPrefix + ".access_allow."})
	}
	return out
}

// networkFilters are a's engines as network RBAC filters, before the
// terminal filter of a TCP port.
func (a *access) networkFilters(statPrefix string) []*listenerv3.Filter {
	if a == nil {
		return nil
	}
	var out []*listenerv3.Filter
	add := func(cfg *netrbacv3.RBAC) {
		out = append(out, &listenerv3.Filter{Name: netRBACFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(cfg)}})
	}
	if a.audit != nil {
		add(&netrbacv3.RBAC{StatPrefix: statPrefix + ".access_audit.", ShadowRules: a.audit})
	}
	if a.deny != nil {
		add(&netrbacv3.RBAC{StatPrefix: statPrefix + ".access_deny.", Rules: a.deny})
	}
	if a.allow != nil {
		add(&netrbacv3.RBAC{StatPrefix: statPrefix + ".access_allow.", Rules: a.allow})
	}
	return out
}
