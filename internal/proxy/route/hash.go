package route

import (
	"errors"
	"net"
	"net/http"

	"github.com/cespare/xxhash/v2"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// HashPolicy is one compiled RouteAction.HashPolicy.
type HashPolicy struct {
	kind     hashKind
	name     string
	terminal bool
}

type hashKind uint8

const (
	hashHeader hashKind = iota
	hashCookie
	hashSourceIP
	hashQuery
)

func compileHashPolicy(p *routev3.RouteAction_HashPolicy) (HashPolicy, error) {
	hp := HashPolicy{terminal: p.GetTerminal()}
	switch s := p.GetPolicySpecifier().(type) {
	case *routev3.RouteAction_HashPolicy_Header_:
		hp.kind, hp.name = hashHeader, http.CanonicalHeaderKey(s.Header.GetHeaderName())
	case *routev3.RouteAction_HashPolicy_Cookie_:
		hp.kind, hp.name = hashCookie, s.Cookie.GetName()
	case *routev3.RouteAction_HashPolicy_ConnectionProperties_:
		if !s.ConnectionProperties.GetSourceIp() {
			return hp, errors.New("connection_properties.source_ip: must be true")
		}
		hp.kind = hashSourceIP
	case *routev3.RouteAction_HashPolicy_QueryParameter_:
		hp.kind, hp.name = hashQuery, s.QueryParameter.GetName()
	default:
		return hp, errors.New("policy_specifier: one of header, cookie, connection_properties, query_parameter is required")
	}
	return hp, nil
}

// Hash computes the request hash from the route's hash policies, combining
// them as Envoy does (rotate-and-xor, stopping after a terminal policy that
// produced a value). ok is false when no policy produced a value.
func (rt *Route) Hash(r *http.Request, remoteAddr string) (h uint64, ok bool) {
	for i := range rt.HashPolicies {
		p := &rt.HashPolicies[i]
		var v string
		var found bool
		switch p.kind {
		case hashHeader:
			v, found = headerValue(r, p.name)
		case hashCookie:
			if c, err := r.Cookie(p.name); err == nil {
				v, found = c.Value, true
			}
		case hashSourceIP:
			if ip, _, err := net.SplitHostPort(remoteAddr); err == nil {
				v, found = ip, true
			}
		case hashQuery:
			q := queryMatch{name: p.name, present: true}
			if q.matches(r.URL.RawQuery) {
				v, found = r.URL.Query().Get(p.name), true
			}
		}
		if !found {
			continue
		}
		x := xxhash.Sum64String(v)
		if ok {
			h = (h<<1 | h>>63) ^ x
		} else {
			h, ok = x, true
		}
		if p.terminal {
			break
		}
	}
	return h, ok
}
