package route

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

// Table is a compiled RouteConfiguration.
type Table struct {
	Name    string
	Headers Mutations // route-configuration level

	// Routes holds every route of every virtual host; Route.ID indexes it.
	Routes []*Route

	exact  map[string]*VirtualHost
	suffix []wildcard // longest first
	prefix []wildcard // longest first
	star   *VirtualHost
}

type wildcard struct {
	part string
	vh   *VirtualHost
}

// VirtualHost is a compiled virtual host.
type VirtualHost struct {
	Name    string
	Routes  []*Route
	Headers Mutations
	// RateLimits are the virtual host's rate_limits.
	RateLimits []RateLimit
}

// Options adjust how a Table matches hosts (from the connection manager).
type Options struct {
	// StripAnyHostPort removes any port from the Host before matching
	// (HCM strip_any_host_port).
	StripAnyHostPort bool
	// StripMatchingHostPort removes the port when it equals the listener's
	// port (HCM strip_matching_host_port); ListenerPort must be set.
	StripMatchingHostPort bool
	ListenerPort          string
}

// OverrideParser parses one typed_per_filter_config value for the filter
// named name.
type OverrideParser func(name string, cfg *anypb.Any) (any, error)

// Compile builds a Table from rc. Errors name the field path below the
// route configuration and report every problem found.
func Compile(rc *routev3.RouteConfiguration) (*Table, error) { return CompileWith(rc, nil) }

// CompileWith is Compile with a parser for typed_per_filter_config (nil:
// any per-filter configuration is an error).
func CompileWith(rc *routev3.RouteConfiguration, parse OverrideParser) (*Table, error) {
	t := &Table{Name: rc.GetName(), exact: map[string]*VirtualHost{}}
	var errs []error
	fail := func(path string, err error) { errs = append(errs, fmt.Errorf("%s: %w", path, err)) }

	var err error
	if t.Headers, err = compileMutations(rc.GetRequestHeadersToAdd(), rc.GetRequestHeadersToRemove(),
		rc.GetResponseHeadersToAdd(), rc.GetResponseHeadersToRemove()); err != nil {
		errs = append(errs, err)
	}
	seen := map[string]string{}
	for i, v := range rc.GetVirtualHosts() {
		path := fmt.Sprintf("virtual_hosts[%d]", i)
		vh := &VirtualHost{Name: v.GetName()}
		if vh.Headers, err = compileMutations(v.GetRequestHeadersToAdd(), v.GetRequestHeadersToRemove(),
			v.GetResponseHeadersToAdd(), v.GetResponseHeadersToRemove()); err != nil {
			errs = append(errs, decode.PrefixErrors(path, err))
		}
		if vh.RateLimits, err = CompileRateLimits(v.GetRateLimits()); err != nil {
			errs = append(errs, decode.PrefixErrors(path, err))
		}
		var vhRetry *RetryPolicy
		if rp := v.GetRetryPolicy(); rp != nil {
			if vhRetry, err = compileRetry(rp); err != nil {
				errs = append(errs, decode.PrefixErrors(path+".retry_policy", err))
			}
		}
		for j, r := range v.GetRoutes() {
			rt, err := compileRoute(r, parse)
			if err == nil && rt.Action == Forward && rt.Retry == nil {
				rt.Retry = vhRetry // a route's own policy wins (Envoy)
			}
			if err != nil {
				errs = append(errs, decode.PrefixErrors(fmt.Sprintf("%s.routes[%d]", path, j), err))
				continue
			}
			rt.ID = len(t.Routes)
			rt.VirtualHost = vh
			vh.Routes = append(vh.Routes, rt)
			t.Routes = append(t.Routes, rt)
		}
		for j, d := range v.GetDomains() {
			d = strings.ToLower(d)
			dpath := fmt.Sprintf("%s.domains[%d]", path, j)
			if prev, dup := seen[d]; dup {
				fail(dpath, fmt.Errorf("domain %q is also used by %s", d, prev))
				continue
			}
			seen[d] = path
			switch {
			case d == "*":
				t.star = vh
			case strings.HasPrefix(d, "*"):
				t.suffix = append(t.suffix, wildcard{d[1:], vh})
			case strings.HasSuffix(d, "*"):
				t.prefix = append(t.prefix, wildcard{d[:len(d)-1], vh})
			case strings.Contains(d, "*"):
				fail(dpath, fmt.Errorf("wildcard %q must be a prefix or suffix", d))
			default:
				t.exact[d] = vh
			}
		}
	}
	byLen := func(w []wildcard) func(i, j int) bool {
		return func(i, j int) bool { return len(w[i].part) > len(w[j].part) }
	}
	sort.SliceStable(t.suffix, byLen(t.suffix))
	sort.SliceStable(t.prefix, byLen(t.prefix))
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return t, nil
}

// VirtualHostFor returns the virtual host serving host, or nil.
func (t *Table) VirtualHostFor(host string, o *Options) *VirtualHost {
	if o != nil && (o.StripAnyHostPort || o.StripMatchingHostPort) {
		if h, p, err := net.SplitHostPort(host); err == nil {
			if o.StripAnyHostPort || p == o.ListenerPort {
				host = h
			}
		}
	}
	host = strings.ToLower(host)
	if vh := t.exact[host]; vh != nil {
		return vh
	}
	for _, w := range t.suffix {
		if len(host) > len(w.part) && strings.HasSuffix(host, w.part) {
			return w.vh
		}
	}
	for _, w := range t.prefix {
		if len(host) > len(w.part) && strings.HasPrefix(host, w.part) {
			return w.vh
		}
	}
	return t.star
}

// Match returns the virtual host and route for r, either of which may be
// nil. path is the request path without the query (the raw, escaped form).
func (t *Table) Match(r *http.Request, path string, o *Options) (*VirtualHost, *Route) {
	vh := t.VirtualHostFor(r.Host, o)
	if vh == nil {
		return nil, nil
	}
	for _, rt := range vh.Routes {
		if rt.match.matches(r, path) {
			return vh, rt
		}
	}
	return vh, nil
}
