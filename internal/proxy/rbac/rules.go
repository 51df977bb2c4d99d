package rbac

import (
	"errors"
	"fmt"
	"net/netip"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/trellis-mesh/trellis/internal/proxy/matcher"
	"github.com/trellis-mesh/trellis/internal/proxy/route"
)

// rule is one compiled permission or principal.
type rule interface{ match(in *Input) bool }

type anyRule struct{}

func (anyRule) match(*Input) bool { return true }

type andRule []rule

func (a andRule) match(in *Input) bool {
	for _, r := range a {
		if !r.match(in) {
			return false
		}
	}
	return true
}

type orRule []rule

func (o orRule) match(in *Input) bool { return anyMatches(o, in) }

type notRule struct{ r rule }

func (n notRule) match(in *Input) bool { return !n.r.match(in) }

// headerRule matches a request header or pseudo-header (:method,
// :authority, :path, :scheme); it never matches a connection.
type headerRule struct{ m route.HeaderMatchers }

func (h headerRule) match(in *Input) bool { return in.Request != nil && h.m.Match(in.Request) }

// pathRule is url_path: the path without query, never a connection.
type pathRule struct{ m matcher.String }

func (p pathRule) match(in *Input) bool { return in.Request != nil && p.m.Match(in.Path) }

type destIPRule struct{ p netip.Prefix }

func (d destIPRule) match(in *Input) bool { return d.p.Contains(in.Local.Addr().Unmap()) }

type destPortRule struct{ lo, hi uint16 } // [lo, hi]

func (d destPortRule) match(in *Input) bool {
	p := in.Local.Port()
	return in.Local.IsValid() && p >= d.lo && p <= d.hi
}

// sniRule is requested_server_name; a connection without SNI has the
// empty server name, as in Envoy.
type sniRule struct{ m matcher.String }

func (s sniRule) match(in *Input) bool { return s.m.Match(in.ServerName) }

type remoteRule struct {
	p      netip.Prefix
	direct bool // direct_remote_ip / source_ip rather than remote_ip
}

func (r remoteRule) match(in *Input) bool {
	a := in.Remote
	if r.direct {
		a = in.DirectRemote
	}
	return r.p.Contains(a.Unmap())
}

// authenticatedRule matches a peer that presented a verified certificate.
// With a principal name it is matched against each URI SAN, then each DNS
// SAN, then the subject (RFC 2253), as Envoy's AuthenticatedMatcher does.
// Unlike Envoy, a TLS connection without a client certificate is not
// authenticated.
type authenticatedRule struct {
	m   matcher.String
	any bool
}

func (a authenticatedRule) match(in *Input) bool {
	c := in.Peer
	if c == nil {
		return false
	}
	if a.any {
		return true
	}
	for _, u := range c.URIs {
		if a.m.Match(u.String()) {
			return true
		}
	}
	for _, d := range c.DNSNames {
		if a.m.Match(d) {
			return true
		}
	}
	return a.m.Match(c.Subject.String())
}

func compilePermission(pb *rbacv3.Permission, path string) (rule, error) {
	switch r := pb.GetRule().(type) {
	case *rbacv3.Permission_Any:
		if !r.Any {
			return nil, fmt.Errorf("%s.any: must be true", path)
		}
		return anyRule{}, nil
	case *rbacv3.Permission_AndRules:
		return compileSet(r.AndRules.GetRules(), path+".and_rules.rules", compilePermission, true)
	case *rbacv3.Permission_OrRules:
		return compileSet(r.OrRules.GetRules(), path+".or_rules.rules", compilePermission, false)
	case *rbacv3.Permission_NotRule:
		in, err := compilePermission(r.NotRule, path+".not_rule")
		return notRule{in}, err
	case *rbacv3.Permission_Header:
		return compileHeader(r.Header, path+".header")
	case *rbacv3.Permission_UrlPath:
		return compilePath(r.UrlPath, path+".url_path")
	case *rbacv3.Permission_DestinationIp:
		p, err := compileCIDR(r.DestinationIp, path+".destination_ip")
		return destIPRule{p}, err
	case *rbacv3.Permission_DestinationPort:
		if r.DestinationPort > 65535 {
			return nil, fmt.Errorf("%s.destination_port: %d is not a port", path, r.DestinationPort)
		}
		return destPortRule{uint16(r.DestinationPort), uint16(r.DestinationPort)}, nil
	case *rbacv3.Permission_DestinationPortRange:
		// Int32Range is [start, end).
		s, e := r.DestinationPortRange.GetStart(), r.DestinationPortRange.GetEnd()
		if s < 0 || e > 65536 || s >= e {
			return nil, fmt.Errorf("%s.destination_port_range: [%d, %d) is not a port range", path, s, e)
		}
		return destPortRule{uint16(s), uint16(e - 1)}, nil
	case *rbacv3.Permission_RequestedServerName:
		m, err := matcher.NewString(r.RequestedServerName)
		if err != nil {
			return nil, fmt.Errorf("%s.requested_server_name: %w", path, err)
		}
		return sniRule{m}, nil
	case nil:
		return nil, fmt.Errorf("%s: a rule is required", path)
	default:
		return nil, fmt.Errorf("%s: rule %s not supported", path, ruleName(pb))
	}
}

func compilePrincipal(pb *rbacv3.Principal, path string) (rule, error) {
	switch id := pb.GetIdentifier().(type) {
	case *rbacv3.Principal_Any:
		if !id.Any {
			return nil, fmt.Errorf("%s.any: must be true", path)
		}
		return anyRule{}, nil
	case *rbacv3.Principal_AndIds:
		return compileSet(id.AndIds.GetIds(), path+".and_ids.ids", compilePrincipal, true)
	case *rbacv3.Principal_OrIds:
		return compileSet(id.OrIds.GetIds(), path+".or_ids.ids", compilePrincipal, false)
	case *rbacv3.Principal_NotId:
		in, err := compilePrincipal(id.NotId, path+".not_id")
		return notRule{in}, err
	case *rbacv3.Principal_Authenticated_:
		pn := id.Authenticated.GetPrincipalName()
		if pn == nil {
			return authenticatedRule{any: true}, nil
		}
		m, err := matcher.NewString(pn)
		if err != nil {
			return nil, fmt.Errorf("%s.authenticated.principal_name: %w", path, err)
		}
		return authenticatedRule{m: m}, nil
	case *rbacv3.Principal_SourceIp:
		//lint:ignore SA1019 Envoy still honours source_ip (as direct_remote_ip); so does Trellis.
		p, err := compileCIDR(id.SourceIp, path+".source_ip")
		return remoteRule{p: p, direct: true}, err
	case *rbacv3.Principal_DirectRemoteIp:
		p, err := compileCIDR(id.DirectRemoteIp, path+".direct_remote_ip")
		return remoteRule{p: p, direct: true}, err
	case *rbacv3.Principal_RemoteIp:
		p, err := compileCIDR(id.RemoteIp, path+".remote_ip")
		return remoteRule{p: p}, err
	case *rbacv3.Principal_Header:
		return compileHeader(id.Header, path+".header")
	case *rbacv3.Principal_UrlPath:
		return compilePath(id.UrlPath, path+".url_path")
	case nil:
		return nil, fmt.Errorf("%s: an identifier is required", path)
	default:
		return nil, fmt.Errorf("%s: identifier %s not supported", path, ruleName(pb))
	}
}

// ruleName names the oneof member set in a Permission or Principal.
func ruleName(m interface {
	ProtoReflect() protoreflect.Message
}) string {
	r := m.ProtoReflect()
	od := r.Descriptor().Oneofs().Get(0)
	if fd := r.WhichOneof(od); fd != nil {
		return string(fd.Name())
	}
	return "(none)"
}

func compileSet[T any](items []T, path string, compile func(T, string) (rule, error), and bool) (rule, error) {
	if len(items) == 0 {
		// Envoy requires at least one: an empty and_rules would match
		// everything and an empty or_rules nothing, both surely mistakes.
		return nil, fmt.Errorf("%s: at least one is required", path)
	}
	var errs []error
	rs := make([]rule, 0, len(items))
	for i, it := range items {
		r, err := compile(it, fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rs = append(rs, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if and {
		return andRule(rs), nil
	}
	return orRule(rs), nil
}

func compileHeader(h *routev3.HeaderMatcher, path string) (rule, error) {
	if h.GetName() == "" {
		return nil, fmt.Errorf("%s.name: required", path)
	}
	m, err := route.NewHeaderMatchers([]*routev3.HeaderMatcher{h})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return headerRule{m}, nil
}

func compilePath(pm *matcherv3.PathMatcher, path string) (rule, error) {
	sm := pm.GetPath()
	if sm == nil {
		return nil, fmt.Errorf("%s.path: required", path)
	}
	m, err := matcher.NewString(sm)
	if err != nil {
		return nil, fmt.Errorf("%s.path: %w", path, err)
	}
	return pathRule{m}, nil
}

// compileCIDR compiles a CidrRange. As in Envoy, an unset prefix_len is 0
// (the whole address family).
func compileCIDR(c *corev3.CidrRange, path string) (netip.Prefix, error) {
	a, err := netip.ParseAddr(c.GetAddressPrefix())
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%s.address_prefix: %w", path, err)
	}
	a = a.Unmap()
	bits := int(c.GetPrefixLen().GetValue())
	if bits > a.BitLen() {
		return netip.Prefix{}, fmt.Errorf("%s.prefix_len: %d is longer than the address (%d bits)", path, bits, a.BitLen())
	}
	return a.Prefix(bits)
}
