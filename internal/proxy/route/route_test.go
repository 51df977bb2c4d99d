package route

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

func compile(t *testing.T, y string) *Table {
	t.Helper()
	rc := &routev3.RouteConfiguration{}
	if err := decode.Unmarshal([]byte(y), rc); err != nil {
		t.Fatal(err)
	}
	tab, err := Compile(rc)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

const table = `
name: rc
virtual_hosts:
- name: exact
  domains: ["api.example.com", "api.example.com:8080"]
  routes:
  - name: grpc
    match: {prefix: "/", grpc: {}}
    route: {cluster: grpc}
  - name: header
    match: {prefix: "/", headers: [{name: x-canary, string_match: {exact: "yes"}}]}
    route: {cluster: canary}
  - name: not-header
    match: {prefix: "/inv", headers: [{name: x-user, string_match: {prefix: "bot"}, invert_match: true}]}
    route: {cluster: humans}
  - name: present
    match: {prefix: "/p", headers: [{name: x-present, present_match: true}]}
    route: {cluster: present}
  - name: query
    match: {prefix: "/", query_parameters: [{name: v, string_match: {exact: "2"}}]}
    route: {cluster: v2}
  - name: method
    match: {prefix: "/", headers: [{name: ":method", string_match: {exact: POST}}]}
    route: {cluster: writes}
  - name: exact-path
    match: {path: "/exact"}
    route: {cluster: exact}
  - name: sep
    match: {path_separated_prefix: "/sep"}
    route: {cluster: sep}
  - name: regex
    match: {safe_regex: {regex: "/v[0-9]+/items"}}
    route: {cluster: regex}
  - name: nocase
    match: {prefix: "/CaSe", case_sensitive: false}
    route: {cluster: nocase}
  - name: default
    match: {prefix: "/"}
    route: {cluster: default}
- name: suffix
  domains: ["*.example.com"]
  routes: [{name: s, match: {prefix: "/"}, route: {cluster: suffix}}]
- name: longer-suffix
  domains: ["*.eu.example.com"]
  routes: [{name: ls, match: {prefix: "/"}, route: {cluster: eu}}]
- name: prefix
  domains: ["internal.*"]
  routes: [{name: p, match: {prefix: "/"}, route: {cluster: prefix}}]
- name: star
  domains: ["*"]
  routes: [{name: any, match: {prefix: "/only"}, route: {cluster: star}}]
`

func TestMatch(t *testing.T) {
	tab := compile(t, table)
	tests := []struct {
		name    string
		method  string
		target  string
		host    string
		headers map[string]string
		want    string // route name, "" for no route
	}{
		{name: "exact host default route", target: "/x", host: "api.example.com", want: "default"},
		{name: "host is case-insensitive", target: "/x", host: "API.Example.com", want: "default"},
		{name: "host with port listed", target: "/x", host: "api.example.com:8080", want: "default"},
		{name: "grpc content type", target: "/svc/M", host: "api.example.com", headers: map[string]string{"Content-Type": "application/grpc+proto"}, want: "grpc"},
		{name: "header exact", target: "/x", host: "api.example.com", headers: map[string]string{"X-Canary": "yes"}, want: "header"},
		{name: "header exact mismatch", target: "/x", host: "api.example.com", headers: map[string]string{"X-Canary": "no"}, want: "default"},
		{name: "inverted header matches other value", target: "/inv", host: "api.example.com", headers: map[string]string{"X-User": "alice"}, want: "not-header"},
		{name: "inverted header excludes value", target: "/inv", host: "api.example.com", headers: map[string]string{"X-User": "botnet"}, want: "default"},
		{name: "inverted header missing does not match", target: "/inv", host: "api.example.com", want: "default"},
		{name: "present header", target: "/p", host: "api.example.com", headers: map[string]string{"X-Present": ""}, want: "present"},
		{name: "query parameter", target: "/x?a=1&v=2", host: "api.example.com", want: "query"},
		{name: "query parameter other value", target: "/x?v=3", host: "api.example.com", want: "default"},
		{name: "pseudo header method", method: "POST", target: "/x", host: "api.example.com", want: "method"},
		{name: "exact path", target: "/exact", host: "api.example.com", want: "exact-path"},
		{name: "exact path ignores query", target: "/exact?q=1", host: "api.example.com", want: "exact-path"},
		{name: "exact path longer", target: "/exactly", host: "api.example.com", want: "default"},
		{name: "separated prefix itself", target: "/sep", host: "api.example.com", want: "sep"},
		{name: "separated prefix segment", target: "/sep/a", host: "api.example.com", want: "sep"},
		{name: "separated prefix not a segment", target: "/separate", host: "api.example.com", want: "default"},
		{name: "regex full match", target: "/v12/items", host: "api.example.com", want: "regex"},
		{name: "regex must match whole path", target: "/v12/items/x", host: "api.example.com", want: "default"},
		{name: "case insensitive prefix", target: "/case/x", host: "api.example.com", want: "nocase"},
		{name: "suffix wildcard", target: "/", host: "www.example.com", want: "s"},
		{name: "longest suffix wins", target: "/", host: "a.eu.example.com", want: "ls"},
		{name: "suffix needs a label", target: "/only", host: ".example.com", want: "any"},
		{name: "prefix wildcard", target: "/", host: "internal.corp", want: "p"},
		{name: "star fallback", target: "/only", host: "other.org", want: "any"},
		{name: "no route in star", target: "/else", host: "other.org", want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.method
			if m == "" {
				m = http.MethodGet
			}
			r := httptest.NewRequest(m, tc.target, nil)
			r.Host = tc.host
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			_, rt := tab.Match(r, r.URL.EscapedPath(), nil)
			got := ""
			if rt != nil {
				got = rt.Name
			}
			if got != tc.want {
				t.Errorf("route = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestStripPort(t *testing.T) {
	tab := compile(t, `virtual_hosts: [{name: a, domains: [a.local], routes: [{name: r, match: {prefix: /}, route: {cluster: c}}]}]`)
	r := httptest.NewRequest("GET", "/", nil)
	r.Host = "a.local:9000"
	if _, rt := tab.Match(r, "/", nil); rt != nil {
		t.Fatal("host with port matched without stripping")
	}
	if _, rt := tab.Match(r, "/", &Options{StripAnyHostPort: true}); rt == nil {
		t.Fatal("strip_any_host_port did not strip")
	}
	if _, rt := tab.Match(r, "/", &Options{StripMatchingHostPort: true, ListenerPort: "9001"}); rt != nil {
		t.Fatal("strip_matching_host_port stripped a different port")
	}
	if _, rt := tab.Match(r, "/", &Options{StripMatchingHostPort: true, ListenerPort: "9000"}); rt == nil {
		t.Fatal("strip_matching_host_port did not strip the listener port")
	}
}

func TestRewrites(t *testing.T) {
	tab := compile(t, `
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - {name: prefix, match: {prefix: /api/}, route: {cluster: c, prefix_rewrite: /v2/}}
  - {name: regex, match: {prefix: /r/}, route: {cluster: c, regex_rewrite: {pattern: {regex: "^/r/(\\w+)/(\\w+)"}, substitution: "/\\2/\\1"}}}
  - {name: redirect, match: {prefix: /old/}, redirect: {prefix_rewrite: /new/, https_redirect: true, response_code: PERMANENT_REDIRECT}}
  - {name: host-redirect, match: {prefix: /h}, redirect: {host_redirect: other.org, port_redirect: 8443, strip_query: true}}
`)
	tests := []struct {
		name, target, want string
	}{
		{name: "prefix", target: "/api/users", want: "/v2/users"},
		{name: "regex", target: "/r/a/b", want: "/b/a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tc.target, nil)
			_, rt := tab.Match(r, r.URL.EscapedPath(), nil)
			got, _ := rt.RewritePath(r.URL.EscapedPath())
			if got != tc.want {
				t.Errorf("rewrite = %q, want %q", got, tc.want)
			}
		})
	}
	r := httptest.NewRequest("GET", "http://shop.local:80/old/x?q=1", nil)
	_, rt := tab.Match(r, r.URL.EscapedPath(), nil)
	if got, want := rt.Redir.Location(r, rt, "/old/x"), "https://shop.local/new/x?q=1"; got != want {
		t.Errorf("location = %q, want %q", got, want)
	}
	if rt.Redir.Code != 308 {
		t.Errorf("code = %d, want 308", rt.Redir.Code)
	}
	r = httptest.NewRequest("GET", "http://shop.local/h?q=1", nil)
	_, rt = tab.Match(r, "/h", nil)
	if got, want := rt.Redir.Location(r, rt, "/h"), "http://other.org:8443/h"; got != want {
		t.Errorf("location = %q, want %q", got, want)
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{name: "bad regex", yaml: `virtual_hosts: [{name: v, domains: ["*"], routes: [{match: {safe_regex: {regex: "("}}, route: {cluster: c}}]}]`,
			want: "virtual_hosts[0].routes[0].match.safe_regex: regex: error parsing regexp"},
		{name: "duplicate domain", yaml: `virtual_hosts: [{name: a, domains: [x]}, {name: b, domains: [X]}]`,
			want: `virtual_hosts[1].domains[0]: domain "x" is also used by virtual_hosts[0]`},
		{name: "infix wildcard", yaml: `virtual_hosts: [{name: a, domains: ["a*b"]}]`,
			want: `virtual_hosts[0].domains[0]: wildcard "a*b" must be a prefix or suffix`},
		{name: "unknown operator", yaml: `request_headers_to_add: [{header: {key: x, value: "%NOPE%"}}]`,
			want: "request_headers_to_add[0].header.value: operator %NOPE% not supported"},
		{name: "total weight mismatch", yaml: `virtual_hosts: [{name: v, domains: ["*"], routes: [{match: {prefix: /}, route: {weighted_clusters: {total_weight: 5, clusters: [{name: a, weight: 1}]}}}]}]`,
			want: "weighted_clusters.total_weight: 5 differs from the sum of weights 1"},
		{name: "prefix rewrite with regex", yaml: `virtual_hosts: [{name: v, domains: ["*"], routes: [{match: {safe_regex: {regex: "/a"}}, route: {cluster: c, prefix_rewrite: /b}}]}]`,
			want: "prefix_rewrite: requires a prefix, path or path_separated_prefix match"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := &routev3.RouteConfiguration{}
			if err := decode.Unmarshal([]byte(tc.yaml), rc); err != nil {
				t.Fatal(err)
			}
			_, err := Compile(rc)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestHeaderMutations(t *testing.T) {
	tab := compile(t, `
request_headers_to_add:
- {header: {key: x-global, value: g}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
virtual_hosts:
- name: v
  domains: ["*"]
  request_headers_to_add:
  - {header: {key: x-global, value: vh}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
  routes:
  - match: {prefix: /}
    route: {cluster: c}
    request_headers_to_remove: [x-secret]
    request_headers_to_add:
    - {header: {key: x-client, value: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% via %PROTOCOL% 100%%"}}
    - {header: {key: x-once, value: "1"}, append_action: ADD_IF_ABSENT}
    - {header: {key: x-copy, value: "%REQ(x-user)%"}}
    - {header: {key: x-empty, value: ""}}
    - {header: {key: x-kept, value: ""}, keep_empty_value: true}
    - {header: {key: x-only-if, value: "new"}, append_action: OVERWRITE_IF_EXISTS}
`)
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Secret", "s")
	r.Header.Set("X-Once", "0")
	r.Header.Set("X-User", "ada")
	_, rt := tab.Match(r, "/", nil)
	v := &Vars{Request: r, RemoteAddr: "10.0.0.1:5555"}
	h := r.Header
	rt.Headers.ApplyRequest(h, v)
	rt.VirtualHost.Headers.ApplyRequest(h, v)
	tab.Headers.ApplyRequest(h, v)
	checks := map[string]string{
		"X-Secret": "", "X-Once": "0", "X-Copy": "ada", "X-Global": "g",
		"X-Client": "10.0.0.1 via HTTP/1.1 100%", "X-Only-If": "",
	}
	for k, want := range checks {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if _, ok := h["X-Empty"]; ok {
		t.Error("empty value added without keep_empty_value")
	}
	if _, ok := h["X-Kept"]; !ok {
		t.Error("keep_empty_value header missing")
	}
}

func TestHash(t *testing.T) {
	tab := compile(t, `virtual_hosts: [{name: v, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: c, hash_policy: [{header: {header_name: x-user}}, {cookie: {name: sid}}, {connection_properties: {source_ip: true}}]}}]}]`)
	r := httptest.NewRequest("GET", "/", nil)
	_, rt := tab.Match(r, "/", nil)
	h1, ok1 := rt.Hash(r, "10.0.0.1:1")
	h2, _ := rt.Hash(r, "10.0.0.1:2")
	h3, _ := rt.Hash(r, "10.0.0.2:1")
	if !ok1 || h1 != h2 || h1 == h3 {
		t.Errorf("source ip hash: %x %x %x", h1, h2, h3)
	}
	r.Header.Set("X-User", "ada")
	h4, _ := rt.Hash(r, "10.0.0.1:1")
	if h4 == h1 {
		t.Error("header did not change the hash")
	}
}

func BenchmarkMatch(b *testing.B) {
	tab := compile(&testing.T{}, table)
	r := httptest.NewRequest("GET", "/v12/items?x=1", nil)
	r.Host = "api.example.com"
	b.ReportAllocs()
	for b.Loop() {
		if _, rt := tab.Match(r, r.URL.EscapedPath(), nil); rt == nil {
			b.Fatal("no route")
		}
	}
}

func TestParseGRPCTimeout(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"1S", time.Second, true}, {"250m", 250 * time.Millisecond, true}, {"2H", 2 * time.Hour, true},
		{"100u", 100 * time.Microsecond, true}, {"5n", 5, true}, {"3M", 3 * time.Minute, true},
		{"", 0, false}, {"S", 0, false}, {"10x", 0, false}, {"123456789S", 0, false}, {"-1S", 0, false},
	}
	for _, tc := range tests {
		got, ok := ParseGRPCTimeout(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%q: got %v %v, want %v %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestEffectiveTimeout(t *testing.T) {
	tab := compile(t, `virtual_hosts: [{name: v, domains: ["*"], routes: [
  {name: capped, match: {prefix: /capped}, route: {cluster: c, timeout: 10s, max_stream_duration: {grpc_timeout_header_max: 2s, grpc_timeout_header_offset: 0.1s}}},
  {name: plain, match: {prefix: /}, route: {cluster: c, timeout: 10s}}]}]`)
	get := func(path, hdr string) time.Duration {
		r := httptest.NewRequest("POST", path, nil)
		if hdr != "" {
			r.Header.Set("Grpc-Timeout", hdr)
		}
		_, rt := tab.Match(r, path, nil)
		return rt.EffectiveTimeout(r)
	}
	if d := get("/capped", "500m"); d != 400*time.Millisecond {
		t.Errorf("grpc-timeout minus offset: %v", d)
	}
	if d := get("/capped", "1H"); d != 1900*time.Millisecond {
		t.Errorf("capped: %v", d)
	}
	if d := get("/capped", ""); d != 10*time.Second {
		t.Errorf("no header: %v", d)
	}
	if d := get("/other", "500m"); d != 10*time.Second {
		t.Errorf("route without grpc_timeout_header_max: %v", d)
	}
}
