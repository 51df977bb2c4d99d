package v1alpha1_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	api "github.com/trellis-mesh/trellis/api/v1alpha1"
)

const accessYAML = `apiVersion: trellis.dev/v1alpha1
kind: AccessPolicy
metadata:
  name: api-readers
spec:
  targetRefs:
  - {group: "", kind: Service, name: api}
  action: ALLOW
  rules:
  - from:
    - service: web
    - {service: batch, mesh: jobs}
    - ipBlocks: [10.0.0.0/8, "2001:db8::/32"]
    to:
    - ports: [8080]
      methods: [GET, HEAD]
      paths:
      - exact: /healthz
      - prefix: /api/
      - template: /users/{id}/orders/{**}
      - regex: '/v[0-9]+/.*'
      hosts: [api.example.com, "*.api.example.com"]
      headers:
      - {name: x-tenant, exact: blue}
      - {name: x-debug, present: true, invert: true}
      - {name: user-agent, regex: '.*curl.*'}
      - {name: x-team, prefix: pay}
    - grpcMethods:
      - {service: shop.v1.Cart, method: AddItem}
      - {service: grpc.health.v1.Health}
  - from:
    - anyAuthenticated: true
    to:
    - methods: [GET]
  - from:
    - any: true
    to:
    - paths: [{exact: /metrics}]
`

func access(m ...func(*api.AccessPolicy)) api.Object { return build(accessYAML, m...) }

// op mutates the first rule's first operation.
func op(f func(*api.AccessOperation)) func(*api.AccessPolicy) {
	return func(p *api.AccessPolicy) { f(&p.Spec.Rules[0].To[0]) }
}

func TestValidateAccessPolicy(t *testing.T) {
	runValidate(t, []vcase{
		{"valid", access(), nil},
		{"deny and audit", access(func(p *api.AccessPolicy) { p.Spec.Action = api.AccessDeny }), nil},
		{"no targets, action, rules", access(func(p *api.AccessPolicy) {
			p.Spec.TargetRefs, p.Spec.Action, p.Spec.Rules = nil, "", nil
		}), []string{
			"spec.targetRefs: Required value: at least one Service",
			"spec.action: Required value: ALLOW, DENY or AUDIT",
			"spec.rules: Required value: at least one rule",
		}},
		{"action", access(func(p *api.AccessPolicy) { p.Spec.Action = "allow" }),
			[]string{`spec.action: Unsupported value: "allow": supported values: "ALLOW", "DENY", "AUDIT"`}},
		{"targets Services only", access(func(p *api.AccessPolicy) {
			p.Spec.TargetRefs = append(p.Spec.TargetRefs,
				gwv1.LocalPolicyTargetReference{Group: api.GatewayGroup, Kind: "HTTPRoute", Name: "r"},
				gwv1.LocalPolicyTargetReference{Kind: "Service", Name: "api.v1"},
				p.Spec.TargetRefs[0])
		}), []string{
			`spec.targetRefs[1].group: Unsupported value: "gateway.networking.k8s.io": supported values: ""`,
			`spec.targetRefs[1].kind: Unsupported value: "HTTPRoute": supported values: "Service"`,
			`spec.targetRefs[2].name: Invalid value: "api.v1": must not contain dots`,
			`spec.targetRefs[3]: Duplicate value: {"group":"","kind":"Service","name":"api"}`,
		}},
		{"rule without sources", access(func(p *api.AccessPolicy) { p.Spec.Rules[1].From = nil }),
			[]string{"spec.rules[1].from: Required value: at least one source (any: true for everyone)"}},
		{"source: exactly one", access(func(p *api.AccessPolicy) {
			p.Spec.Rules[1].From = []api.AccessSource{{}, {Any: true, AnyAuthenticated: true}, {Mesh: "jobs", Any: true}}
		}), []string{
			"spec.rules[1].from[0]: Invalid value: {}: exactly one of service, anyAuthenticated, any, ipBlocks must be set",
			`spec.rules[1].from[1]: Invalid value: {"anyAuthenticated":true,"any":true}: exactly one of service, anyAuthenticated, any, ipBlocks must be set`,
			"spec.rules[1].from[2].mesh: Forbidden: only with service",
		}},
		{"source names", access(func(p *api.AccessPolicy) {
			p.Spec.Rules[0].From[0] = api.AccessSource{Service: "Web", Mesh: "a_b"}
		}), []string{
			`spec.rules[0].from[0].service: Invalid value: "Web": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`,
			`spec.rules[0].from[0].mesh: Invalid value: "a_b": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`,
		}},
		{"ip blocks", access(func(p *api.AccessPolicy) {
			p.Spec.Rules[0].From[2].IPBlocks = []string{"10.0.0.1", "10.1.2.3/8", "fe80::1%eth0/64", "192.0.2.0/24", "192.0.2.0/24"}
		}), []string{
			`spec.rules[0].from[2].ipBlocks[0]: Invalid value: "10.0.0.1": must be a CIDR such as 10.0.0.0/8, 192.0.2.7/32 or 2001:db8::/32`,
			`spec.rules[0].from[2].ipBlocks[1]: Invalid value: "10.1.2.3/8": has host bits set: did you mean 10.0.0.0/8?`,
			`spec.rules[0].from[2].ipBlocks[2]: Invalid value: "fe80::1%eth0/64": must be a CIDR such as 10.0.0.0/8, 192.0.2.7/32 or 2001:db8::/32`,
			`spec.rules[0].from[2].ipBlocks[4]: Duplicate value: "192.0.2.0/24"`,
		}},
		{"empty operation", access(func(p *api.AccessPolicy) { p.Spec.Rules[1].To = []api.AccessOperation{{}} }),
			[]string{"spec.rules[1].to[0]: Required value: at least one of ports, methods, paths, hosts, headers, grpcMethods, kafka, nats (leave to out to match every request)"}},
		{"no operations: every request", access(func(p *api.AccessPolicy) { p.Spec.Rules[1].To = nil }), nil},
		{"ports and methods", access(op(func(o *api.AccessOperation) {
			o.Ports = []int32{0, 8080, 8080}
			o.Methods = []string{"get", "GET", "GET", "M-SEARCH"}
		})), []string{
			"spec.rules[0].to[0].ports[0]: Invalid value: 0: must be between 1 and 65535, inclusive",
			"spec.rules[0].to[0].ports[2]: Duplicate value: 8080",
			`spec.rules[0].to[0].methods[0]: Invalid value: "get": must be an upper-case HTTP method such as GET`,
			`spec.rules[0].to[0].methods[2]: Duplicate value: "GET"`,
		}},
		{"hosts", access(op(func(o *api.AccessOperation) {
			o.Hosts = []string{"API.example.com", "api:80", "a.example.com", "a.example.com", strings.Repeat("a", 254)}
		})), []string{
			`spec.rules[0].to[0].hosts[0]: Invalid value: "API.example.com": must be a lower-case host name without port, optionally starting with "*."`,
			`spec.rules[0].to[0].hosts[1]: Invalid value: "api:80": must be a lower-case host name without port, optionally starting with "*."`,
			`spec.rules[0].to[0].hosts[3]: Duplicate value: "a.example.com"`,
			`spec.rules[0].to[0].hosts[4]: Too long: may not be more than 253 bytes`,
		}},
		{"too many", access(op(func(o *api.AccessOperation) {
			o.Methods = nil
			for i := range 65 {
				o.Methods = append(o.Methods, fmt.Sprintf("M%d", i))
			}
		})),
			[]string{"spec.rules[0].to[0].methods: Too many: 65: must have at most 64 items"},
		},
		{"path: exactly one", access(op(func(o *api.AccessOperation) {
			o.Paths = []api.AccessPathMatch{{}, {Exact: "/a", Prefix: "/b"}}
		})), []string{
			"spec.rules[0].to[0].paths[0]: Invalid value: {}: exactly one of exact, prefix, template, regex must be set",
			`spec.rules[0].to[0].paths[1]: Invalid value: {"exact":"/a","prefix":"/b"}: exactly one of exact, prefix, template, regex must be set`,
		}},
		{"paths that a normalized path never is", access(op(func(o *api.AccessOperation) {
			o.Paths = []api.AccessPathMatch{
				{Exact: "admin"}, {Exact: "/a//b"}, {Exact: "/a/../b"}, {Exact: "/a/."}, {Prefix: "/a b"},
				{Exact: "/%61dmin"}, {Prefix: "/a%2fb"}, {Prefix: "/a%2Fb"}, {Exact: "/caf%c3%a9"},
				{Prefix: "/a/."}, {Prefix: "/caf%C3%A9"}, {Exact: "/a?b"},
			}
		})), []string{
			`spec.rules[0].to[0].paths[0].exact: Invalid value: "admin": must start with '/'`,
			`spec.rules[0].to[0].paths[1].exact: Invalid value: "/a//b": must not contain '//': requests' slashes are merged before matching`,
			`spec.rules[0].to[0].paths[2].exact: Invalid value: "/a/../b": must not contain '.' or '..' segments: requests' dot segments are removed before matching`,
			`spec.rules[0].to[0].paths[3].exact: Invalid value: "/a/.": must not contain '.' or '..' segments: requests' dot segments are removed before matching`,
			`spec.rules[0].to[0].paths[4].prefix: Invalid value: "/a b": must contain only URL path characters or %-escapes`,
			`spec.rules[0].to[0].paths[5].exact: Invalid value: "/%61dmin": %61 never appears in a normalized path: write "a"`,
			`spec.rules[0].to[0].paths[6].prefix: Invalid value: "/a%2fb": %2f never appears in a normalized path: write %2F`,
			`spec.rules[0].to[0].paths[7].prefix: Invalid value: "/a%2Fb": %2F never appears in a normalized path: escaped slashes are decoded or refused`,
			`spec.rules[0].to[0].paths[8].exact: Invalid value: "/caf%c3%a9": %c3 never appears in a normalized path: write %C3`,
			`spec.rules[0].to[0].paths[11].exact: Invalid value: "/a?b": must contain only URL path characters or %-escapes`,
		}},
		{"templates", access(op(func(o *api.AccessOperation) {
			o.Paths = []api.AccessPathMatch{
				{Template: "users/{id}"}, {Template: "/a/{**}/b"}, {Template: "/a/{id}/{id}"}, {Template: "/a/x{id}"},
				{Template: "/a//{id}"}, {Template: "/a/{1d}"}, {Template: "/a/../{id}"}, {Template: "/{**}"}, {Template: "/a/{id}/"},
			}
		})), []string{
			`spec.rules[0].to[0].paths[0].template: Invalid value: "users/{id}": must start with '/'`,
			`spec.rules[0].to[0].paths[1].template: Invalid value: "/a/{**}/b": {**} must be the last segment`,
			`spec.rules[0].to[0].paths[2].template: Invalid value: "/a/{id}/{id}": variable {id} appears twice`,
			`spec.rules[0].to[0].paths[3].template: Invalid value: "/a/x{id}": segment "x{id}": a variable is a whole segment, {name} (letters, digits, '_') or {**}`,
			`spec.rules[0].to[0].paths[4].template: Invalid value: "/a//{id}": must not contain '//': requests' slashes are merged before matching`,
			`spec.rules[0].to[0].paths[5].template: Invalid value: "/a/{1d}": segment "{1d}": a variable is a whole segment, {name} (letters, digits, '_') or {**}`,
			`spec.rules[0].to[0].paths[6].template: Invalid value: "/a/../{id}": segment "..": must not contain '.' or '..' segments: requests' dot segments are removed before matching`,
		}},
		{"regex", access(op(func(o *api.AccessOperation) {
			o.Paths = []api.AccessPathMatch{{Regex: "/a/(b"}, {Regex: `/(?=x)`}}
		})), []string{
			"spec.rules[0].to[0].paths[0].regex: Invalid value: \"/a/(b\": must be an RE2 regular expression: error parsing regexp: missing closing ): `/a/(b`",
			"spec.rules[0].to[0].paths[1].regex: Invalid value: \"/(?=x)\": must be an RE2 regular expression: error parsing regexp: invalid or unsupported Perl syntax: `(?=`",
		}},
		{"headers", access(op(func(o *api.AccessOperation) {
			o.Headers = []api.AccessHeaderMatch{
				{Name: "x-a"}, {Name: "x-a", Exact: "1", Regex: "2"}, {Name: ":path", Exact: "/"}, {Name: "Host", Exact: "a"},
				{Name: "x-b", Regex: "(", Invert: true}, {Name: "x-c", Prefix: strings.Repeat("v", 4097)},
			}
		})), []string{
			`spec.rules[0].to[0].headers[0]: Invalid value: {"name":"x-a"}: exactly one of exact, prefix, regex, present must be set`,
			`spec.rules[0].to[0].headers[1]: Invalid value: {"name":"x-a","exact":"1","regex":"2"}: exactly one of exact, prefix, regex, present must be set`,
			`spec.rules[0].to[0].headers[2].name: Invalid value: ":path": must be an HTTP header name (RFC 7230 token characters)`,
			`spec.rules[0].to[0].headers[3].name: Invalid value: "Host": use hosts to match the Host or :authority`,
			"spec.rules[0].to[0].headers[4].regex: Invalid value: \"(\": must be an RE2 regular expression: error parsing regexp: missing closing ): `(`",
			"spec.rules[0].to[0].headers[5].prefix: Too long: may not be more than 4096 bytes",
		}},
		{"grpc methods", access(func(p *api.AccessPolicy) {
			p.Spec.Rules[0].To[1].GRPCMethods = []api.AccessGRPCMethod{{Method: "Get"}, {Service: ".shop.Cart"}, {Service: "shop/Cart", Method: "Add-Item"}}
		}), []string{
			`spec.rules[0].to[1].grpcMethods[0].service: Required value: the fully qualified service, e.g. "shop.v1.Cart"`,
			`spec.rules[0].to[1].grpcMethods[1].service: Invalid value: ".shop.Cart": must be a fully qualified gRPC service name, e.g. "shop.v1.Cart"`,
			`spec.rules[0].to[1].grpcMethods[2].service: Invalid value: "shop/Cart": must be a fully qualified gRPC service name, e.g. "shop.v1.Cart"`,
			`spec.rules[0].to[1].grpcMethods[2].method: Invalid value: "Add-Item": must be a gRPC method name (letters, digits, '_')`,
		}},
	})
}

func TestPathTemplateRegex(t *testing.T) {
	tests := []struct {
		tmpl, re   string
		match, not []string
	}{
		{"/users/{id}/orders", `^/users/[^/]+/orders$`, []string{"/users/7/orders"}, []string{"/users//orders", "/users/7/orders/", "/users/7/8/orders"}},
		{"/static/{**}", `^/static(?:/.*)?$`, []string{"/static", "/static/", "/static/a/b.css"}, []string{"/staticx", "/stati"}},
		{"/a.b/{x}/", `^/a\.b/[^/]+/$`, []string{"/a.b/1/"}, []string{"/aXb/1/", "/a.b/1"}},
		{"/", `^/$`, []string{"/"}, []string{"/a"}},
		{"/{**}", `^(?:/.*)?$`, []string{"/", "/a/b"}, nil},
	}
	for _, tc := range tests {
		re, err := api.PathTemplateRegex(tc.tmpl)
		if err != nil || re != tc.re {
			t.Errorf("PathTemplateRegex(%q) = %q, %v; want %q", tc.tmpl, re, err, tc.re)
			continue
		}
		for _, p := range tc.match {
			if !mustMatch(t, re, p) {
				t.Errorf("%s does not match %q", tc.tmpl, p)
			}
		}
		for _, p := range tc.not {
			if mustMatch(t, re, p) {
				t.Errorf("%s matches %q", tc.tmpl, p)
			}
		}
	}
}

func TestValidateMeshIdentity(t *testing.T) {
	runValidate(t, []vcase{
		{"all set", mesh(func(m *api.Mesh) {
			m.Spec.MTLS = &api.MTLS{Mode: api.MTLSPermissive, CertificateTTL: dur(time.Hour)}
			m.Spec.CA = &api.MeshCA{Type: api.CAProvided, Provided: &api.ProvidedCA{CertFile: "/etc/trellis/ca.pem", KeyFile: "/etc/trellis/ca.key"}}
			m.Spec.AccessPolicy = &api.MeshAccessPolicy{Default: api.AccessDeny}
		}), nil},
		{"mode", mesh(func(m *api.Mesh) { m.Spec.MTLS = &api.MTLS{Mode: "strict"} }),
			[]string{`spec.mtls.mode: Unsupported value: "strict": supported values: "STRICT", "PERMISSIVE", "DISABLED"`}},
		{"ttl bounds", mesh(func(m *api.Mesh) { m.Spec.MTLS = &api.MTLS{CertificateTTL: dur(time.Minute)} }),
			[]string{`spec.mtls.certificateTTL: Invalid value: "1m0s": must be between 5m and 720h (30 days), inclusive`}},
		{"ttl upper bound", mesh(func(m *api.Mesh) { m.Spec.MTLS = &api.MTLS{CertificateTTL: dur(721 * time.Hour)} }),
			[]string{`spec.mtls.certificateTTL: Invalid value: "721h0m0s": must be between 5m and 720h (30 days), inclusive`}},
		{"ttl at the bounds", mesh(func(m *api.Mesh) { m.Spec.MTLS = &api.MTLS{CertificateTTL: dur(5 * time.Minute)} }), nil},
		{"provided needs files", mesh(func(m *api.Mesh) { m.Spec.CA = &api.MeshCA{Type: api.CAProvided} }),
			[]string{"spec.ca.provided: Required value: certFile and keyFile of the CA"}},
		{"provided files", mesh(func(m *api.Mesh) {
			m.Spec.CA = &api.MeshCA{Type: api.CAProvided, Provided: &api.ProvidedCA{CertFile: "ca.pem"}}
		}), []string{
			`spec.ca.provided.certFile: Invalid value: "ca.pem": must be a clean absolute path`,
			"spec.ca.provided.keyFile: Required value: an absolute path on the control plane's host",
		}},
		{"builtin has no files", mesh(func(m *api.Mesh) { m.Spec.CA = &api.MeshCA{Provided: &api.ProvidedCA{}} }),
			[]string{"spec.ca.provided: Forbidden: only with type provided"}},
		{"ca type", mesh(func(m *api.Mesh) { m.Spec.CA = &api.MeshCA{Type: "vault"} }),
			[]string{`spec.ca.type: Unsupported value: "vault": supported values: "builtin", "provided"`}},
		{"access default", mesh(func(m *api.Mesh) { m.Spec.AccessPolicy = &api.MeshAccessPolicy{Default: api.AccessAudit} }),
			[]string{`spec.accessPolicy.default: Unsupported value: "AUDIT": supported values: "ALLOW", "DENY"`}},
		{"dataplane identity", dataplane(func(d *api.Dataplane) { d.Spec.Identity = "web.v1" }),
			[]string{`spec.identity: Invalid value: "web.v1": must not contain dots`}},
		{"dataplane identity set", dataplane(func(d *api.Dataplane) { d.Spec.Identity = "web" }), nil},
	})
}

func TestIdentityHelpers(t *testing.T) {
	dp := dataplane().(*api.Dataplane)
	if got := api.IdentityService(dp); got != "web" {
		t.Errorf("IdentityService, label app = %q", got)
	}
	dp.Spec.Identity = "frontend"
	if got := api.IdentityService(dp); got != "frontend" {
		t.Errorf("IdentityService, spec.identity = %q", got)
	}
	dp.Spec.Identity, dp.Labels = "", nil
	if got := api.IdentityService(dp); got != "web-1" {
		t.Errorf("IdentityService, no label = %q", got)
	}

	type eff struct {
		Mode   api.MTLSMode
		TTL    time.Duration
		Access api.AccessAction
		TD     string
	}
	of := func(m *api.Mesh) eff {
		return eff{api.MTLSModeOf(m), api.CertificateTTLOf(m), api.AccessDefaultOf(m), api.TrustDomainOf("demo", m)}
	}
	bare := mesh().(*api.Mesh)
	if diff := cmp.Diff(eff{api.MTLSDisabled, 24 * time.Hour, api.AccessAllow, "demo.trellis.local"}, of(nil)); diff != "" {
		t.Errorf("no Mesh object (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(eff{api.MTLSStrict, 24 * time.Hour, api.AccessAllow, "demo.trellis.local"}, of(bare)); diff != "" {
		t.Errorf("undefaulted Mesh (-want +got):\n%s", diff)
	}
	api.Default(bare)
	if diff := cmp.Diff(eff{api.MTLSStrict, 24 * time.Hour, api.AccessAllow, "demo.trellis.local"}, of(bare)); diff != "" {
		t.Errorf("defaulted Mesh (-want +got):\n%s", diff)
	}
	set := mesh(func(m *api.Mesh) {
		m.Spec.TrustDomain = "example.org"
		m.Spec.MTLS = &api.MTLS{Mode: api.MTLSPermissive, CertificateTTL: dur(time.Hour)}
		m.Spec.AccessPolicy = &api.MeshAccessPolicy{Default: api.AccessDeny}
	}).(*api.Mesh)
	if diff := cmp.Diff(eff{api.MTLSPermissive, time.Hour, api.AccessDeny, "example.org"}, of(set)); diff != "" {
		t.Errorf("Mesh with every field (-want +got):\n%s", diff)
	}
}

func mustMatch(t *testing.T, re, s string) bool {
	t.Helper()
	return regexp.MustCompile(re).MatchString(s)
}
