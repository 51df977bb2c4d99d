package translator

import (
	"crypto/x509"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	httprbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"golang.org/x/tools/txtar"

	"github.com/trellis-mesh/trellis/internal/proxy/rbac"
)

// engines are an inbound's RBAC engines in the order they run.
type engines struct {
	shadow []*rbac.Engine
	rules  []*rbac.Engine
}

// decide runs the engines as the proxy's filters do: shadow rules never
// decide; the first enforcing engine that refuses names the reason.
func (e engines) decide(in *rbac.Input) (allowed bool, reason string, shadowDenied string) {
	for _, s := range e.shadow {
		if d := s.Evaluate(in); d.Policy != rbac.NoPolicy {
			shadowDenied = s.PolicyName(d.Policy)
		}
	}
	for _, r := range e.rules {
		if d := r.Evaluate(in); !d.Allowed {
			return false, r.DenyDetails(d.Policy), shadowDenied
		}
	}
	return true, "", shadowDenied
}

// inboundEngines translates the case file's proxy and compiles the RBAC
// engines of its inbound listener with the proxy's engine.
func inboundEngines(t *testing.T, file string) engines {
	t.Helper()
	ar, err := txtar.ParseFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string][]byte{}
	for _, f := range ar.Files {
		sections[f.Name] = f.Data
	}
	objs := decodeObjects(t, sections["resources.yaml"])
	res, err := Translate(NewIndex(objs, testBundles), proxyFor(t, sections["proxy.yaml"], objs))
	if err != nil {
		t.Fatal(err)
	}
	var e engines
	compile := func(r *httprbacv3.RBAC) {
		if r.GetShadowRules() != nil {
			en, err := rbac.Compile(r.GetShadowRules())
			if err != nil {
				t.Fatal(err)
			}
			e.shadow = append(e.shadow, en)
		}
		if r.GetRules() != nil {
			en, err := rbac.Compile(r.GetRules())
			if err != nil {
				t.Fatal(err)
			}
			e.rules = append(e.rules, en)
		}
	}
	for _, x := range res.Listeners {
		l := x.(*listenerv3.Listener)
		if l.GetAddress().GetSocketAddress().GetAddress() == localhost {
			continue
		}
		for _, f := range l.GetFilterChains()[0].GetFilters() {
			a := f.GetTypedConfig()
			switch {
			case a.MessageIs((*netrbacv3.RBAC)(nil)):
				n := &netrbacv3.RBAC{}
				if err := a.UnmarshalTo(n); err != nil {
					t.Fatal(err)
				}
				compile(&httprbacv3.RBAC{Rules: n.GetRules(), ShadowRules: n.GetShadowRules()})
			case a.MessageIs((*hcmv3.HttpConnectionManager)(nil)):
				h := &hcmv3.HttpConnectionManager{}
				if err := a.UnmarshalTo(h); err != nil {
					t.Fatal(err)
				}
				for _, hf := range h.GetHttpFilters() {
					r := &httprbacv3.RBAC{}
					if hf.GetTypedConfig().MessageIs(r) {
						if err := hf.GetTypedConfig().UnmarshalTo(r); err != nil {
							t.Fatal(err)
						}
						compile(r)
					}
				}
			}
		}
	}
	return e
}

func peerCert(id string) *x509.Certificate {
	u, err := url.Parse(id)
	if err != nil {
		panic(err)
	}
	return &x509.Certificate{URIs: []*url.URL{u}}
}

// TestAccessDecisions evaluates the translated access-http case with the
// proxy's RBAC engine: the decisions docs/reference/accesspolicy.md
// promises, and reasons naming the policy and rule.
func TestAccessDecisions(t *testing.T) {
	e := inboundEngines(t, "testdata/access-http.txtar")
	web := peerCert("spiffe://default.trellis.local/default/web")
	batch := peerCert("spiffe://default.trellis.local/default/batch")
	reporting := peerCert("spiffe://analytics.example.com/analytics/reporting")
	reportingHere := peerCert("spiffe://default.trellis.local/default/reporting")
	for _, tc := range []struct {
		name, method, target, host string
		headers                    map[string]string
		peer                       *x509.Certificate
		remote                     string
		allowed                    bool
		reason, shadow             string
	}{
		{name: "web reads the api", method: "GET", target: "/api/items", peer: web, allowed: true},
		{name: "web reads by template", method: "HEAD", target: "/users/7/orders/3/lines", peer: web, allowed: true},
		{name: "template needs a segment", method: "GET", target: "/users//orders", peer: web, reason: "rbac_access_denied_matched_policy[none]"},
		{name: "web by regex", method: "GET", target: "/v2/x", peer: web, allowed: true},
		{name: "web may not write", method: "POST", target: "/api/items", peer: web, reason: "rbac_access_denied_matched_policy[none]"},
		{name: "admin denied to everyone", method: "GET", target: "/admin", peer: web, reason: "rbac_access_denied_matched_policy[shop/no-admin/rule/0]"},
		{name: "admin subtree denied", method: "GET", target: "/admin/x", peer: batch, reason: "rbac_access_denied_matched_policy[shop/no-admin/rule/0]"},
		{name: "metrics rule is for port 9090 only", method: "GET", target: "/metrics", reason: "rbac_access_denied_matched_policy[none]"},
		{name: "batch posts with every header", method: "POST", target: "/x", host: "API.shop.example.com:8080", peer: batch,
			headers: map[string]string{"X-Tenant": "acme", "X-Request-Id": "1", "X-Version": "v2.1"}, allowed: true},
		{name: "other mesh's reporting, wildcard host", method: "POST", target: "/x", host: "a.b.internal.example.com", peer: reporting,
			headers: map[string]string{"X-Tenant": "acme", "X-Request-Id": "1", "X-Version": "v2.0"}, allowed: true},
		{name: "reporting of this mesh is someone else", method: "POST", target: "/x", host: "a.internal.example.com", peer: reportingHere,
			headers: map[string]string{"X-Tenant": "acme", "X-Request-Id": "1", "X-Version": "v2.0"}, reason: "rbac_access_denied_matched_policy[none]"},
		{name: "inverted header matches", method: "POST", target: "/x", host: "api.shop.example.com", peer: batch,
			headers: map[string]string{"X-Tenant": "acme", "X-Request-Id": "1", "X-Version": "v2.0", "User-Agent": "curl/8"}, reason: "rbac_access_denied_matched_policy[none]"},
		{name: "missing header", method: "POST", target: "/x", host: "api.shop.example.com", peer: batch,
			headers: map[string]string{"X-Tenant": "acme", "X-Version": "v2.0"}, reason: "rbac_access_denied_matched_policy[none]"},
		{name: "wrong host", method: "POST", target: "/x", host: "example.com", peer: batch,
			headers: map[string]string{"X-Tenant": "acme", "X-Request-Id": "1", "X-Version": "v2.0"}, reason: "rbac_access_denied_matched_policy[none]"},
		{name: "any authenticated, gRPC service", method: "POST", target: "/shop.v1.Cart/Add", peer: reportingHere, allowed: true},
		{name: "any authenticated, gRPC method", method: "POST", target: "/shop.v1.Orders/Get", peer: reportingHere, allowed: true},
		{name: "other gRPC method", method: "POST", target: "/shop.v1.Orders/Delete", peer: reportingHere, reason: "rbac_access_denied_matched_policy[none]"},
		{name: "unauthenticated gRPC", method: "POST", target: "/shop.v1.Cart/Add", reason: "rbac_access_denied_matched_policy[none]"},
		{name: "audit reports, never blocks", method: "GET", target: "/api/x", peer: web, remote: "10.20.1.2", allowed: true, shadow: "shop/outsiders/rule/0"},
		{name: "audit over IPv6", method: "GET", target: "/api/x", peer: web, remote: "2001:db8:20::1", allowed: true, shadow: "shop/outsiders/rule/0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.target, nil)
			if tc.host != "" {
				r.Host = tc.host
			}
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			remote := netip.MustParseAddr("10.1.1.1")
			if tc.remote != "" {
				remote = netip.MustParseAddr(tc.remote)
			}
			in := &rbac.Input{Request: r, Path: r.URL.Path, Peer: tc.peer, DirectRemote: remote, Remote: remote,
				Local: netip.MustParseAddrPort("10.0.0.1:8080")}
			allowed, reason, shadow := e.decide(in)
			if allowed != tc.allowed || reason != tc.reason || shadow != tc.shadow {
				t.Errorf("decision = %v %q (shadow %q), want %v %q (shadow %q)", allowed, reason, shadow, tc.allowed, tc.reason, tc.shadow)
			}
		})
	}
}

// TestAccessDecisionsTCP checks the TCP case: sources and ports only, the
// mesh default DENY, a DENY rule whose HTTP fields are dropped.
func TestAccessDecisionsTCP(t *testing.T) {
	e := inboundEngines(t, "testdata/access-tcp.txtar")
	for _, tc := range []struct {
		name    string
		peer    *x509.Certificate
		remote  string
		allowed bool
		reason  string
	}{
		{"orders connects", peerCert("spiffe://default.trellis.local/default/orders"), "10.1.1.1", true, ""},
		{"reports' rule needs HTTP", peerCert("spiffe://default.trellis.local/default/reports"), "10.1.1.1", false, "rbac_access_denied_matched_policy[none]"},
		{"plaintext", nil, "10.1.1.1", false, "rbac_access_denied_matched_policy[none]"},
		{"denied range, even for orders", peerCert("spiffe://default.trellis.local/default/orders"), "192.0.2.9", false, "rbac_access_denied_matched_policy[default/no-scrapers/rule/0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			remote := netip.MustParseAddr(tc.remote)
			in := &rbac.Input{Peer: tc.peer, DirectRemote: remote, Remote: remote, Local: netip.MustParseAddrPort("10.0.0.4:5432")}
			allowed, reason, _ := e.decide(in)
			if allowed != tc.allowed || reason != tc.reason {
				t.Errorf("decision = %v %q, want %v %q", allowed, reason, tc.allowed, tc.reason)
			}
		})
	}
}
