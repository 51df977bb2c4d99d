package route

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/trellis-mesh/trellis/internal/proxy/ratelimit"
)

// RateLimit is one compiled rate_limits entry of a route or virtual host
// (envoy.config.route.v3.RateLimit): its actions, applied in order, build
// one rate limit descriptor for a request. Filters such as the local rate
// limit filter match those descriptors against their own configuration.
type RateLimit struct {
	// Stage selects the filter that uses this entry (the filter's stage).
	Stage   uint32
	actions []rateLimitAction
}

type rateLimitKind uint8

const (
	rlDestinationCluster rateLimitKind = iota
	rlRequestHeaders
	rlRemoteAddress
	rlMaskedRemoteAddress
	rlGenericKey
	rlHeaderValueMatch
)

type rateLimitAction struct {
	kind        rateLimitKind
	key         string // descriptor key
	value       string // generic_key, header_value_match
	header      string // request_headers: canonical name or pseudo-header
	skipAbsent  bool
	headers     HeaderMatchers
	expectMatch bool
	v4Mask      int
	v6Mask      int
}

// RateLimitInput is what descriptor actions read from a request.
type RateLimitInput struct {
	Request *http.Request
	// RemoteAddr is the downstream peer, "ip:port" or "ip".
	RemoteAddr string
	// Cluster is the cluster the route sends to; empty when the route picks
	// one per request (weighted_clusters), in which case a
	// destination_cluster action produces no descriptor.
	Cluster string
}

// CompileRateLimits compiles Envoy rate_limits. Errors name the index and
// field.
func CompileRateLimits(rls []*routev3.RateLimit) ([]RateLimit, error) {
	var out []RateLimit
	var errs []error
	for i, rl := range rls {
		if rl.GetStage().GetValue() > 10 {
			errs = append(errs, fmt.Errorf("rate_limits[%d].stage: %d is above 10", i, rl.GetStage().GetValue()))
		}
		c := RateLimit{Stage: rl.GetStage().GetValue()}
		if len(rl.GetActions()) == 0 {
			errs = append(errs, fmt.Errorf("rate_limits[%d].actions: at least one action is required", i))
		}
		for j, a := range rl.GetActions() {
			ca, err := compileRateLimitAction(a)
			if err != nil {
				errs = append(errs, fmt.Errorf("rate_limits[%d].actions[%d].%w", i, j, err))
				continue
			}
			c.actions = append(c.actions, ca)
		}
		out = append(out, c)
	}
	return out, errors.Join(errs...)
}

func compileRateLimitAction(a *routev3.RateLimit_Action) (rateLimitAction, error) {
	switch s := a.GetActionSpecifier().(type) {
	case *routev3.RateLimit_Action_DestinationCluster_:
		return rateLimitAction{kind: rlDestinationCluster, key: "destination_cluster"}, nil
	case *routev3.RateLimit_Action_RequestHeaders_:
		rh := s.RequestHeaders
		if rh.GetHeaderName() == "" {
			return rateLimitAction{}, errors.New("request_headers.header_name: required")
		}
		if rh.GetDescriptorKey() == "" {
			return rateLimitAction{}, errors.New("request_headers.descriptor_key: required")
		}
		name := rh.GetHeaderName()
		if !strings.HasPrefix(name, ":") {
			name = http.CanonicalHeaderKey(name)
		}
		return rateLimitAction{kind: rlRequestHeaders, key: rh.GetDescriptorKey(), header: name, skipAbsent: rh.GetSkipIfAbsent()}, nil
	case *routev3.RateLimit_Action_RemoteAddress_:
		return rateLimitAction{kind: rlRemoteAddress, key: "remote_address"}, nil
	case *routev3.RateLimit_Action_MaskedRemoteAddress_:
		m := s.MaskedRemoteAddress
		c := rateLimitAction{kind: rlMaskedRemoteAddress, key: "masked_remote_address", v4Mask: 32, v6Mask: 128}
		if v := m.GetV4PrefixMaskLen(); v != nil {
			if c.v4Mask = int(v.GetValue()); c.v4Mask > 32 {
				return c, fmt.Errorf("masked_remote_address.v4_prefix_mask_len: %d is above 32", c.v4Mask)
			}
		}
		if v := m.GetV6PrefixMaskLen(); v != nil {
			if c.v6Mask = int(v.GetValue()); c.v6Mask > 128 {
				return c, fmt.Errorf("masked_remote_address.v6_prefix_mask_len: %d is above 128", c.v6Mask)
			}
		}
		return c, nil
	case *routev3.RateLimit_Action_GenericKey_:
		g := s.GenericKey
		if g.GetDescriptorValue() == "" {
			return rateLimitAction{}, errors.New("generic_key.descriptor_value: required")
		}
		key := g.GetDescriptorKey()
		if key == "" {
			key = "generic_key"
		}
		return rateLimitAction{kind: rlGenericKey, key: key, value: g.GetDescriptorValue()}, nil
	case *routev3.RateLimit_Action_HeaderValueMatch_:
		h := s.HeaderValueMatch
		if h.GetDescriptorValue() == "" {
			return rateLimitAction{}, errors.New("header_value_match.descriptor_value: required")
		}
		if len(h.GetHeaders()) == 0 {
			return rateLimitAction{}, errors.New("header_value_match.headers: at least one matcher is required")
		}
		hm, err := NewHeaderMatchers(h.GetHeaders())
		if err != nil {
			return rateLimitAction{}, fmt.Errorf("header_value_match.%w", err)
		}
		key := h.GetDescriptorKey()
		if key == "" {
			key = "header_match"
		}
		expect := true
		if e := h.GetExpectMatch(); e != nil {
			expect = e.GetValue()
		}
		return rateLimitAction{kind: rlHeaderValueMatch, key: key, value: h.GetDescriptorValue(), headers: hm, expectMatch: expect}, nil
	case nil:
		return rateLimitAction{}, errors.New("action_specifier: required")
	default:
		return rateLimitAction{}, fmt.Errorf("action_specifier: %T not supported", s)
	}
}

// Append appends the descriptor this entry builds for in to dst. ok is
// false, and dst returned unchanged, when an action produces nothing: as in
// Envoy, one action without a value drops the whole descriptor (except a
// request_headers action with skip_if_absent, which drops only its entry).
func (rl *RateLimit) Append(dst []ratelimit.Entry, in *RateLimitInput) (out []ratelimit.Entry, ok bool) {
	n := len(dst)
	for i := range rl.actions {
		a := &rl.actions[i]
		var v string
		switch a.kind {
		case rlDestinationCluster:
			if v = in.Cluster; v == "" {
				return dst[:n], false
			}
		case rlRequestHeaders:
			hv, found := headerValue(in.Request, a.header)
			if !found {
				if a.skipAbsent {
					continue
				}
				return dst[:n], false
			}
			v = hv
		case rlRemoteAddress:
			if v = hostOf(in.RemoteAddr); v == "" {
				return dst[:n], false
			}
		case rlMaskedRemoteAddress:
			ip, err := netip.ParseAddr(hostOf(in.RemoteAddr))
			if err != nil {
				return dst[:n], false
			}
			bits := a.v6Mask
			if ip = ip.Unmap(); ip.Is4() {
				bits = a.v4Mask
			}
			p, _ := ip.Prefix(bits)
			v = p.Addr().String() + "/" + strconv.Itoa(bits)
		case rlGenericKey:
			v = a.value
		case rlHeaderValueMatch:
			if a.headers.Match(in.Request) != a.expectMatch {
				return dst[:n], false
			}
			v = a.value
		}
		dst = append(dst, ratelimit.Entry{Key: a.key, Value: v})
	}
	if len(dst) == n {
		return dst, false // every entry was skipped: no descriptor
	}
	return dst, true
}

// hostOf strips the port from an "ip:port" address; it returns its input
// when there is none.
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
