package rbac

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/trellis-mesh/trellis/internal/testutil/certs"
)

func compile(t testing.TB, js string) *Engine {
	t.Helper()
	pb := &rbacv3.RBAC{}
	if err := protojson.Unmarshal([]byte(js), pb); err != nil {
		t.Fatal(err)
	}
	e, err := Compile(pb)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func req(method, target string, hdr ...string) *Input {
	r, err := http.NewRequest(method, "http://svc.local"+target, nil)
	if err != nil {
		panic(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	return &Input{
		Request: r, Path: r.URL.EscapedPath(),
		DirectRemote: netip.MustParseAddr("10.0.0.7"), Remote: netip.MustParseAddr("192.0.2.1"),
		Local: netip.MustParseAddrPort("10.0.0.1:8080"),
	}
}

func TestEvaluate(t *testing.T) {
	ca := certs.NewCA(t, "mesh")
	spiffe := ca.Issue(t, certs.LeafOptions{URIs: []string{"spiffe://mesh.local/default/frontend"}, DNSNames: []string{"frontend.default"}}).TLS.Leaf
	dnsOnly := ca.Issue(t, certs.LeafOptions{CommonName: "legacy", DNSNames: []string{"legacy.default"}}).TLS.Leaf
	subjectOnly := ca.Issue(t, certs.LeafOptions{CommonName: "batch"}).TLS.Leaf
	with := func(in *Input, f func(*Input)) *Input { f(in); return in }

	tests := []struct {
		name    string
		rules   string
		in      *Input
		allowed bool
		policy  string
	}{
		{"allow with no policy denies", `{}`, req("GET", "/"), false, "none"},
		{"allow any", `{"policies":{"all":{"permissions":[{"any":true}],"principals":[{"any":true}]}}}`, req("GET", "/"), true, "all"},
		{"deny matched names the policy", `{"action":"DENY","policies":{"admin":{"permissions":[{"url_path":{"path":{"prefix":"/admin"}}}],"principals":[{"any":true}]}}}`,
			req("GET", "/admin/users"), false, "admin"},
		{"deny unmatched allows", `{"action":"DENY","policies":{"admin":{"permissions":[{"url_path":{"path":{"prefix":"/admin"}}}],"principals":[{"any":true}]}}}`,
			req("GET", "/public"), true, "none"},
		{"url_path ignores the query", `{"action":"DENY","policies":{"p":{"permissions":[{"url_path":{"path":{"exact":"/admin"}}}],"principals":[{"any":true}]}}}`,
			req("GET", "/admin?x=/public"), false, "p"},
		{"first policy by name is reported", `{"policies":{"b":{"permissions":[{"any":true}],"principals":[{"any":true}]},"a":{"permissions":[{"any":true}],"principals":[{"any":true}]}}}`,
			req("GET", "/"), true, "a"},
		{"log always allows", `{"action":"LOG","policies":{"p":{"permissions":[{"any":true}],"principals":[{"any":true}]}}}`, req("GET", "/"), true, "p"},
		{"method pseudo-header", `{"policies":{"get":{"permissions":[{"header":{"name":":method","string_match":{"exact":"GET"}}}],"principals":[{"any":true}]}}}`,
			req("POST", "/"), false, "none"},
		{"authority pseudo-header", `{"policies":{"h":{"permissions":[{"header":{"name":":authority","string_match":{"exact":"svc.local"}}}],"principals":[{"any":true}]}}}`,
			req("GET", "/"), true, "h"},
		{"path pseudo-header has the query", `{"policies":{"h":{"permissions":[{"header":{"name":":path","string_match":{"exact":"/a?b=c"}}}],"principals":[{"any":true}]}}}`,
			req("GET", "/a?b=c"), true, "h"},
		{"header principal", `{"policies":{"h":{"permissions":[{"any":true}],"principals":[{"header":{"name":"x-team","string_match":{"exact":"ops"}}}]}}}`,
			req("GET", "/", "X-Team", "ops"), true, "h"},
		{"and_rules needs all", `{"policies":{"p":{"permissions":[{"and_rules":{"rules":[{"header":{"name":":method","string_match":{"exact":"GET"}}},{"url_path":{"path":{"prefix":"/api/"}}}]}}],"principals":[{"any":true}]}}}`,
			req("GET", "/web"), false, "none"},
		{"or_rules needs one", `{"policies":{"p":{"permissions":[{"or_rules":{"rules":[{"destination_port":9090},{"url_path":{"path":{"prefix":"/api/"}}}]}}],"principals":[{"any":true}]}}}`,
			req("GET", "/api/x"), true, "p"},
		{"not_rule", `{"policies":{"p":{"permissions":[{"not_rule":{"url_path":{"path":{"prefix":"/admin"}}}}],"principals":[{"any":true}]}}}`,
			req("GET", "/admin"), false, "none"},
		{"destination port", `{"policies":{"p":{"permissions":[{"destination_port":8080}],"principals":[{"any":true}]}}}`, req("GET", "/"), true, "p"},
		{"destination port range excludes end", `{"policies":{"p":{"permissions":[{"destination_port_range":{"start":8000,"end":8080}}],"principals":[{"any":true}]}}}`, req("GET", "/"), false, "none"},
		{"destination ip", `{"policies":{"p":{"permissions":[{"destination_ip":{"address_prefix":"10.0.0.0","prefix_len":24}}],"principals":[{"any":true}]}}}`, req("GET", "/"), true, "p"},
		{"remote_ip is the trusted client", `{"policies":{"p":{"permissions":[{"any":true}],"principals":[{"remote_ip":{"address_prefix":"192.0.2.0","prefix_len":24}}]}}}`, req("GET", "/"), true, "p"},
		{"direct_remote_ip is the peer", `{"policies":{"p":{"permissions":[{"any":true}],"principals":[{"direct_remote_ip":{"address_prefix":"192.0.2.0","prefix_len":24}}]}}}`, req("GET", "/"), false, "none"},
		{"source_ip is the peer", `{"policies":{"p":{"permissions":[{"any":true}],"principals":[{"source_ip":{"address_prefix":"10.0.0.7","prefix_len":32}}]}}}`, req("GET", "/"), true, "p"},
		{"requested_server_name", `{"policies":{"p":{"permissions":[{"requested_server_name":{"suffix":".mesh.local"}}],"principals":[{"any":true}]}}}`,
			with(req("GET", "/"), func(in *Input) { in.ServerName = "api.mesh.local" }), true, "p"},
		{"authenticated needs a certificate", `{"policies":{"p":{"permissions":[{"any":true}],"principals":[{"authenticated":{}}]}}}`, req("GET", "/"), false, "none"},
		{"authenticated any", `{"policies":{"p":{"permissions":[{"any":true}],"principals":[{"authenticated":{}}]}}}`,
			with(req("GET", "/"), func(in *Input) { in.Peer = subjectOnly }), true, "p"},
		{"authenticated URI SAN", `{"policies":{"p":{"permissions":[{"any":true}],"principals":[{"authenticated":{"principal_name":{"exact":"spiffe://mesh.local/default/frontend"}}}]}}}`,
			with(req("GET", "/"), func(in *Input) { in.Peer = spiffe }), true, "p"},
		{"authenticated DNS SAN", `{"policies":{"p":{"permissions":[{"any":true}],"principals":[{"authenticated":{"principal_name":{"exact":"legacy.default"}}}]}}}`,
			with(req("GET", "/"), func(in *Input) { in.Peer = dnsOnly }), true, "p"},
		{"authenticated subject", `{"policies":{"p":{"permissions":[{"any":true}],"principals":[{"authenticated":{"principal_name":{"exact":"CN=batch"}}}]}}}`,
			with(req("GET", "/"), func(in *Input) { in.Peer = subjectOnly }), true, "p"},
		{"authenticated other identity", `{"policies":{"p":{"permissions":[{"any":true}],"principals":[{"authenticated":{"principal_name":{"exact":"spiffe://mesh.local/default/backend"}}}]}}}`,
			with(req("GET", "/"), func(in *Input) { in.Peer = spiffe }), false, "none"},
		{"not_id", `{"policies":{"p":{"permissions":[{"any":true}],"principals":[{"not_id":{"authenticated":{}}}]}}}`, req("GET", "/"), true, "p"},
		{"and_ids", `{"policies":{"p":{"permissions":[{"any":true}],"principals":[{"and_ids":{"ids":[{"authenticated":{}},{"url_path":{"path":{"exact":"/"}}}]}}]}}}`,
			with(req("GET", "/"), func(in *Input) { in.Peer = spiffe }), true, "p"},
		{"header never matches a connection", `{"policies":{"p":{"permissions":[{"header":{"name":":method","present_match":true}}],"principals":[{"any":true}]}}}`,
			&Input{}, false, "none"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := compile(t, tc.rules)
			d := e.Evaluate(tc.in)
			if d.Allowed != tc.allowed || e.PolicyName(d.Policy) != tc.policy {
				t.Fatalf("got allowed=%v policy=%q, want allowed=%v policy=%q", d.Allowed, e.PolicyName(d.Policy), tc.allowed, tc.policy)
			}
		})
	}
}

func TestDenyDetails(t *testing.T) {
	e := compile(t, `{"policies":{"ops":{"permissions":[{"any":true}],"principals":[{"any":true}]}}}`)
	if got := e.DenyDetails(0); got != "rbac_access_denied_matched_policy[ops]" {
		t.Fatal(got)
	}
	if got := e.DenyDetails(NoPolicy); got != "rbac_access_denied_matched_policy[none]" {
		t.Fatal(got)
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct{ name, rules, want string }{
		{"no permissions", `{"policies":{"p":{"principals":[{"any":true}]}}}`, `policies["p"].permissions: at least one permission is required`},
		{"no principals", `{"policies":{"p":{"permissions":[{"any":true}]}}}`, `policies["p"].principals: at least one principal is required`},
		{"metadata", `{"policies":{"p":{"permissions":[{"metadata":{}}],"principals":[{"any":true}]}}}`, `policies["p"].permissions[0]: rule metadata not supported`},
		{"filter_state", `{"policies":{"p":{"permissions":[{"any":true}],"principals":[{"filter_state":{"key":"k"}}]}}}`, `policies["p"].principals[0]: identifier filter_state not supported`},
		{"condition", `{"policies":{"p":{"permissions":[{"any":true}],"principals":[{"any":true}],"condition":{"const_expr":{"bool_value":true}}}}}`, `condition, checked_condition and cel_config (CEL) are not supported`},
		{"bad cidr", `{"policies":{"p":{"permissions":[{"any":true}],"principals":[{"remote_ip":{"address_prefix":"10.0.0","prefix_len":8}}]}}}`, `policies["p"].principals[0].remote_ip.address_prefix`},
		{"long prefix", `{"policies":{"p":{"permissions":[{"destination_ip":{"address_prefix":"10.0.0.0","prefix_len":33}}],"principals":[{"any":true}]}}}`, `prefix_len: 33 is longer`},
		{"empty and_rules", `{"policies":{"p":{"permissions":[{"and_rules":{}}],"principals":[{"any":true}]}}}`, `permissions[0].and_rules.rules: at least one is required`},
		{"nested", `{"policies":{"p":{"permissions":[{"or_rules":{"rules":[{"any":true},{"url_path":{}}]}}],"principals":[{"any":true}]}}}`, `permissions[0].or_rules.rules[1].url_path.path: required`},
		{"bad regex", `{"policies":{"p":{"permissions":[{"url_path":{"path":{"safe_regex":{"regex":"("}}}}],"principals":[{"any":true}]}}}`, `url_path.path: safe_regex`},
		{"port", `{"policies":{"p":{"permissions":[{"destination_port":70000}],"principals":[{"any":true}]}}}`, `destination_port: 70000 is not a port`},
		{"audit logging", `{"audit_logging_options":{}}`, `audit_logging_options: not supported`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pb := &rbacv3.RBAC{}
			if err := protojson.Unmarshal([]byte(tc.rules), pb); err != nil {
				t.Fatal(err)
			}
			_, err := Compile(pb)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func BenchmarkEvaluate(b *testing.B) {
	ca := certs.NewCA(b, "mesh")
	peer := ca.Issue(b, certs.LeafOptions{URIs: []string{"spiffe://mesh.local/default/frontend"}}).TLS.Leaf
	e := compile(b, `{"action":"ALLOW","policies":{
	  "admin-deny":{"permissions":[{"and_rules":{"rules":[{"url_path":{"path":{"prefix":"/admin"}}},{"header":{"name":":method","string_match":{"exact":"DELETE"}}}]}}],"principals":[{"any":true}]},
	  "frontend":{"permissions":[{"url_path":{"path":{"prefix":"/api/"}}},{"destination_port":8080}],"principals":[{"authenticated":{"principal_name":{"exact":"spiffe://mesh.local/default/frontend"}}}]}}}`)
	b.Run("path+port", func(b *testing.B) {
		in := req("GET", "/web/index.html")
		b.ReportAllocs()
		for b.Loop() {
			if e.Evaluate(in).Allowed {
				b.Fatal("allowed")
			}
		}
	})
	b.Run("authenticated", func(b *testing.B) {
		in := req("GET", "/api/users")
		in.Peer = peer
		b.ReportAllocs()
		for b.Loop() {
			if !e.Evaluate(in).Allowed {
				b.Fatal("denied")
			}
		}
	})
}
