package route

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/trellis-mesh/trellis/internal/proxy/datasource"
	"github.com/trellis-mesh/trellis/internal/proxy/matcher"
	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

// DefaultTimeout is Envoy's route timeout when RouteAction.timeout is unset.
const DefaultTimeout = 15 * time.Second

// Action says what a matched route does.
type Action uint8

// The route actions.
const (
	Forward Action = iota
	Redirect
	DirectResponse
)

// Route is one compiled route.
type Route struct {
	// ID indexes Table.Routes; per-route state (metrics) is kept by ID.
	ID          int
	Name        string
	VirtualHost *VirtualHost
	Action      Action
	Headers     Mutations

	match routeMatch

	// Forward.
	Cluster         string
	ClusterHeader   string
	Weighted        []WeightedCluster
	totalWeight     uint64
	PrefixRewrite   string
	RegexRewrite    *regexp.Regexp
	RegexSubst      string
	HostRewrite     string
	AutoHostRewrite bool
	// Timeout bounds the upstream exchange; 0 disables it.
	Timeout time.Duration
	// IdleTimeout, when IdleTimeoutSet, replaces the connection manager's
	// stream_idle_timeout for this route (0 disables it).
	IdleTimeout    time.Duration
	IdleTimeoutSet bool
	// MaxStreamDuration resets a stream that lives longer (0: no limit).
	MaxStreamDuration time.Duration
	// GRPCTimeoutMax, when GRPCTimeoutSet, makes a request's grpc-timeout
	// header replace Timeout, capped at GRPCTimeoutMax (0: no cap) and
	// reduced by GRPCTimeoutOffset.
	GRPCTimeoutSet    bool
	GRPCTimeoutMax    time.Duration
	GRPCTimeoutOffset time.Duration
	HashPolicies      []HashPolicy
	// Upgrades overrides the connection manager's upgrade_configs per type
	// (lower case); absent types follow the connection manager.
	Upgrades map[string]bool
	// Retry is the route's (or else its virtual host's) retry policy; nil
	// means no retries.
	Retry *RetryPolicy
	// Mirrors are the shadow clusters requests are copied to.
	Mirrors []Mirror
	// RateLimits are the route's rate_limits (RouteAction.rate_limits).
	RateLimits []RateLimit
	// PerFilter holds typed_per_filter_config by filter name, parsed by
	// the filters' own builders.
	PerFilter map[string]any

	// Redirect.
	Redir *RedirectAction

	// DirectResponse.
	Status int
	Body   []byte
}

// WeightedCluster is one entry of weighted_clusters.
type WeightedCluster struct {
	Name   string
	Weight uint64
}

// RedirectAction is a compiled RedirectAction.
type RedirectAction struct {
	Scheme, Host, Port, Path, PrefixRewrite string
	Code                                    int
	StripQuery                              bool
}

func compileRoute(r *routev3.Route, parse OverrideParser) (*Route, error) {
	rt := &Route{Name: r.GetName()}
	var errs []error
	var err error
	for name, a := range r.GetTypedPerFilterConfig() {
		if parse == nil {
			errs = append(errs, fmt.Errorf("typed_per_filter_config[%q]: no HTTP filter takes it", name))
			continue
		}
		v, err := parse(name, a)
		if err != nil {
			errs = append(errs, fmt.Errorf("typed_per_filter_config[%q]: %w", name, err))
			continue
		}
		if rt.PerFilter == nil {
			rt.PerFilter = map[string]any{}
		}
		rt.PerFilter[name] = v
	}
	if rt.match, err = compileMatch(r.GetMatch()); err != nil {
		errs = append(errs, fmt.Errorf("match.%w", err))
	}
	if rt.Headers, err = compileMutations(r.GetRequestHeadersToAdd(), r.GetRequestHeadersToRemove(),
		r.GetResponseHeadersToAdd(), r.GetResponseHeadersToRemove()); err != nil {
		errs = append(errs, err)
	}
	switch a := r.GetAction().(type) {
	case *routev3.Route_Route:
		if err := rt.compileForward(a.Route); err != nil {
			errs = append(errs, fmt.Errorf("route.%w", err))
		}
	case *routev3.Route_Redirect:
		rt.Action = Redirect
		rt.Redir, err = compileRedirect(a.Redirect)
		if err != nil {
			errs = append(errs, fmt.Errorf("redirect.%w", err))
		}
	case *routev3.Route_DirectResponse:
		rt.Action = DirectResponse
		rt.Status = int(a.DirectResponse.GetStatus())
		if b := a.DirectResponse.GetBody(); b != nil {
			if rt.Body, err = datasource.Read(b); err != nil {
				errs = append(errs, fmt.Errorf("direct_response.body: %w", err))
			}
		}
	default:
		errs = append(errs, errors.New("action: one of route, redirect, direct_response is required"))
	}
	return rt, errors.Join(errs...)
}

func (rt *Route) compileForward(a *routev3.RouteAction) error {
	rt.Action = Forward
	switch s := a.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		rt.Cluster = s.Cluster
	case *routev3.RouteAction_ClusterHeader:
		rt.ClusterHeader = http.CanonicalHeaderKey(s.ClusterHeader)
	case *routev3.RouteAction_WeightedClusters:
		for i, c := range s.WeightedClusters.GetClusters() {
			w := uint64(c.GetWeight().GetValue())
			if c.GetWeight() == nil {
				return fmt.Errorf("weighted_clusters.clusters[%d].weight: required", i)
			}
			rt.Weighted = append(rt.Weighted, WeightedCluster{Name: c.GetName(), Weight: w})
			rt.totalWeight += w
		}
		if rt.totalWeight == 0 {
			return errors.New("weighted_clusters: the sum of weights must be > 0")
		}
		//lint:ignore SA1019 Envoy still honours this deprecated field; so does Trellis.
		if tw := s.WeightedClusters.GetTotalWeight(); tw != nil && uint64(tw.GetValue()) != rt.totalWeight {
			return fmt.Errorf("weighted_clusters.total_weight: %d differs from the sum of weights %d", tw.GetValue(), rt.totalWeight)
		}
	default:
		return errors.New("cluster_specifier: one of cluster, cluster_header, weighted_clusters is required")
	}
	rt.PrefixRewrite = a.GetPrefixRewrite()
	if rt.PrefixRewrite != "" && rt.match.kind == pathRegex {
		return errors.New("prefix_rewrite: requires a prefix, path or path_separated_prefix match")
	}
	if rr := a.GetRegexRewrite(); rr != nil {
		if rt.PrefixRewrite != "" {
			return errors.New("regex_rewrite: cannot be combined with prefix_rewrite")
		}
		re, err := matcher.NewRegexUnanchored(rr.GetPattern())
		if err != nil {
			return fmt.Errorf("regex_rewrite.pattern: %w", err)
		}
		rt.RegexRewrite, rt.RegexSubst = re, envoySubst(rr.GetSubstitution())
	}
	switch h := a.GetHostRewriteSpecifier().(type) {
	case *routev3.RouteAction_HostRewriteLiteral:
		rt.HostRewrite = h.HostRewriteLiteral
	case *routev3.RouteAction_AutoHostRewrite:
		rt.AutoHostRewrite = h.AutoHostRewrite.GetValue()
	case nil:
	default:
		return fmt.Errorf("host_rewrite_specifier %T: not supported", h)
	}
	rt.Timeout = DefaultTimeout
	if t := a.GetTimeout(); t != nil {
		rt.Timeout = t.AsDuration()
	}
	rls, err := CompileRateLimits(a.GetRateLimits())
	if err != nil {
		return err
	}
	rt.RateLimits = rls
	for i, m := range a.GetRequestMirrorPolicies() {
		mm, err := compileMirror(m)
		if err != nil {
			return fmt.Errorf("request_mirror_policies[%d].%w", i, err)
		}
		rt.Mirrors = append(rt.Mirrors, mm)
	}
	if it := a.GetIdleTimeout(); it != nil {
		rt.IdleTimeout, rt.IdleTimeoutSet = it.AsDuration(), true
	}
	if msd := a.GetMaxStreamDuration(); msd != nil {
		rt.MaxStreamDuration = msd.GetMaxStreamDuration().AsDuration()
		if m := msd.GetGrpcTimeoutHeaderMax(); m != nil {
			rt.GRPCTimeoutSet, rt.GRPCTimeoutMax = true, m.AsDuration()
			rt.GRPCTimeoutOffset = msd.GetGrpcTimeoutHeaderOffset().AsDuration()
		}
	}
	for i, hp := range a.GetHashPolicy() {
		p, err := compileHashPolicy(hp)
		if err != nil {
			return fmt.Errorf("hash_policy[%d].%w", i, err)
		}
		rt.HashPolicies = append(rt.HashPolicies, p)
	}
	if rp := a.GetRetryPolicy(); rp != nil {
		p, err := compileRetry(rp)
		if err != nil {
			return prefixRetry(err)
		}
		rt.Retry = p
	}
	for i, u := range a.GetUpgradeConfigs() {
		if u.GetUpgradeType() == "" {
			return fmt.Errorf("upgrade_configs[%d].upgrade_type: required", i)
		}
		if rt.Upgrades == nil {
			rt.Upgrades = map[string]bool{}
		}
		rt.Upgrades[strings.ToLower(u.GetUpgradeType())] = u.GetEnabled() == nil || u.GetEnabled().GetValue()
	}
	return nil
}

// envoySubst converts an RE2 substitution ("\1") to Go's template syntax.
func envoySubst(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			b.WriteString("${")
			b.WriteByte(s[i+1])
			b.WriteString("}")
			i++
		case c == '$':
			b.WriteString("$$")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func compileRedirect(r *routev3.RedirectAction) (*RedirectAction, error) {
	ra := &RedirectAction{Host: r.GetHostRedirect(), StripQuery: r.GetStripQuery()}
	if r.GetPortRedirect() != 0 {
		ra.Port = fmt.Sprint(r.GetPortRedirect())
	}
	switch s := r.GetSchemeRewriteSpecifier().(type) {
	case *routev3.RedirectAction_HttpsRedirect:
		if s.HttpsRedirect {
			ra.Scheme = "https"
		}
	case *routev3.RedirectAction_SchemeRedirect:
		ra.Scheme = strings.ToLower(s.SchemeRedirect)
	}
	switch p := r.GetPathRewriteSpecifier().(type) {
	case *routev3.RedirectAction_PathRedirect:
		ra.Path = p.PathRedirect
	case *routev3.RedirectAction_PrefixRewrite:
		ra.PrefixRewrite = p.PrefixRewrite
	case nil:
	default:
		return nil, fmt.Errorf("path_rewrite_specifier %T: not supported", p)
	}
	switch r.GetResponseCode() {
	case routev3.RedirectAction_MOVED_PERMANENTLY:
		ra.Code = http.StatusMovedPermanently
	case routev3.RedirectAction_FOUND:
		ra.Code = http.StatusFound
	case routev3.RedirectAction_SEE_OTHER:
		ra.Code = http.StatusSeeOther
	case routev3.RedirectAction_TEMPORARY_REDIRECT:
		ra.Code = http.StatusTemporaryRedirect
	case routev3.RedirectAction_PERMANENT_REDIRECT:
		ra.Code = http.StatusPermanentRedirect
	default:
		return nil, fmt.Errorf("response_code: %v not supported", r.GetResponseCode())
	}
	return ra, nil
}

// PickCluster returns the cluster name for r, or "" when the route names
// its cluster by a header that r lacks.
func (rt *Route) PickCluster(r *http.Request) string {
	switch {
	case rt.Cluster != "":
		return rt.Cluster
	case rt.ClusterHeader != "":
		return r.Header.Get(rt.ClusterHeader)
	}
	n := rand.Uint64N(rt.totalWeight)
	for _, w := range rt.Weighted {
		if n < w.Weight {
			return w.Name
		}
		n -= w.Weight
	}
	return rt.Weighted[len(rt.Weighted)-1].Name
}

// RewritePath applies prefix_rewrite or regex_rewrite to path (the escaped
// path without query) and reports whether it changed.
func (rt *Route) RewritePath(path string) (string, bool) {
	switch {
	case rt.PrefixRewrite != "":
		return rt.PrefixRewrite + path[len(rt.match.value):], true
	case rt.RegexRewrite != nil:
		return rt.RegexRewrite.ReplaceAllString(path, rt.RegexSubst), true
	}
	return path, false
}

// Location computes the redirect target for r.
func (ra *RedirectAction) Location(r *http.Request, rt *Route, path string) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if ra.Scheme != "" {
		scheme = ra.Scheme
	}
	host, port := r.Host, ""
	if h, p, ok := strings.Cut(host, ":"); ok && !strings.Contains(p, ":") {
		host, port = h, p
	}
	if ra.Host != "" {
		host = ra.Host
		if h, p, ok := strings.Cut(host, ":"); ok {
			host, port = h, p
		}
	}
	if ra.Port != "" {
		port = ra.Port
	} else if ra.Scheme != "" && (port == "80" || port == "443") {
		port = ""
	}
	switch {
	case ra.Path != "":
		path = ra.Path
	case ra.PrefixRewrite != "" && rt.match.kind != pathRegex:
		path = ra.PrefixRewrite + path[len(rt.match.value):]
	}
	if port != "" {
		host += ":" + port
	}
	loc := scheme + "://" + host + path
	if !ra.StripQuery && r.URL.RawQuery != "" && !strings.Contains(path, "?") {
		loc += "?" + r.URL.RawQuery
	}
	return loc
}

func queryUnescape(s string) (string, error) { return url.QueryUnescape(s) }

func prefixRetry(err error) error {
	return decode.PrefixErrors("retry_policy", err)
}

// EffectiveTimeout returns the upstream timeout for r: the route timeout,
// or, when the route honours it, the request's grpc-timeout header capped
// by grpc_timeout_header_max and reduced by grpc_timeout_header_offset.
func (rt *Route) EffectiveTimeout(r *http.Request) time.Duration {
	if !rt.GRPCTimeoutSet {
		return rt.Timeout
	}
	d, ok := ParseGRPCTimeout(r.Header.Get("Grpc-Timeout"))
	if !ok {
		return rt.Timeout
	}
	if rt.GRPCTimeoutMax > 0 && d > rt.GRPCTimeoutMax {
		d = rt.GRPCTimeoutMax
	}
	if rt.GRPCTimeoutOffset > 0 && d > rt.GRPCTimeoutOffset {
		d -= rt.GRPCTimeoutOffset
	}
	return d
}

// ParseGRPCTimeout parses a grpc-timeout header value: up to 8 digits and
// a unit (H, M, S, m, u, n), as the gRPC over HTTP/2 protocol defines it.
func ParseGRPCTimeout(v string) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	var n int64
	for _, c := range v[:len(v)-1] {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	unit := map[byte]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second,
		'm': time.Millisecond, 'u': time.Microsecond, 'n': time.Nanosecond}[v[len(v)-1]]
	if unit == 0 {
		return 0, false
	}
	return time.Duration(n) * unit, true
}
