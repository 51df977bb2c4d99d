package proxy_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/trellis-mesh/trellis/internal/testutil/certs"
)

// rbacHTTP: a DENY engine refusing /admin and DELETE on /api/, an ALLOW
// shadow engine that would admit only GET, a route where RBACPerRoute turns
// the filter off and one where it replaces the rules. Paths are normalized
// the way the control plane configures inbound listeners.
const rbacHTTP = `
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
` + webListener + `          normalize_path: true
          merge_slashes: true
          path_with_escaped_slashes_action: UNESCAPE_AND_FORWARD
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: "/admin/open"}
                route: {cluster: app}
                typed_per_filter_config:
                  envoy.filters.http.rbac: {"@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute}
              - match: {prefix: "/locked"}
                route: {cluster: app}
                typed_per_filter_config:
                  envoy.filters.http.rbac:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute
                    rbac: {rules: {action: ALLOW, policies: {}}, rules_stat_prefix: locked.}
              - match: {prefix: "/", grpc: {}}
                route: {cluster: h2}
              - match: {prefix: "/"}
                route: {cluster: app}
          http_filters:
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules_stat_prefix: inbound.
              rules:
                action: DENY
                policies:
                  deny-admin:
                    permissions: [{url_path: {path: {prefix: "/admin"}}}]
                    principals: [{any: true}]
                  deny-api-delete:
                    permissions:
                    - and_rules:
                        rules:
                        - header: {name: ":method", string_match: {exact: DELETE}}
                        - url_path: {path: {prefix: "/api/"}}
                    principals: [{any: true}]
                  deny-grpc-empty:
                    permissions: [{url_path: {path: {exact: "/grpc.testing.TestService/EmptyCall"}}}]
                    principals: [{any: true}]
                  deny-team-x:
                    permissions: [{any: true}]
                    principals: [{header: {name: x-team, string_match: {exact: x}}}]
              shadow_rules_stat_prefix: audit.
              shadow_rules:
                action: ALLOW
                policies:
                  only-get:
                    permissions: [{header: {name: ":method", string_match: {exact: GET}}}]
                    principals: [{any: true}]
          - {name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
  clusters:
  - name: app
    load_assignment: {cluster_name: app, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .}}}}]}]}
  - name: h2
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment: {cluster_name: h2, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .}}}}]}]}
`

func do(t *testing.T, c *http.Client, method, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestRBACHTTP(t *testing.T) {
	e := startEcho(t, "app")
	p := startProxy(t, rbacHTTP, e.Addr())
	base := "http://" + p.ListenerAddrs()["web"]
	c := http.DefaultClient

	tests := []struct {
		name, method, path string
		hdr                map[string]string
		status             int
		reason             string
	}{
		{"public GET", "GET", "/public", nil, 200, ""},
		{"admin denied, policy named", "GET", "/admin/users", nil, 403, "rbac_access_denied_matched_policy[deny-admin]"},
		{"DELETE on the API denied", "DELETE", "/api/items/1", nil, 403, "rbac_access_denied_matched_policy[deny-api-delete]"},
		{"GET on the API allowed", "GET", "/api/items/1", nil, 200, ""},
		{"DELETE elsewhere allowed", "DELETE", "/web/1", nil, 200, ""},
		{"header principal denied", "GET", "/public", map[string]string{"X-Team": "x"}, 403, "rbac_access_denied_matched_policy[deny-team-x]"},
		{"per-route disable", "GET", "/admin/open/x", nil, 200, ""},
		{"per-route replacement", "GET", "/locked", nil, 403, "rbac_access_denied_matched_policy[none]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, c, tc.method, base+tc.path, tc.hdr)
			if resp.StatusCode != tc.status || resp.Header.Get("X-Trellis-Reason") != tc.reason {
				t.Fatalf("%s %s: %d %q %q, want %d %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("X-Trellis-Reason"), body, tc.status, tc.reason)
			}
			if tc.status == 403 && !strings.Contains(body, "RBAC: access denied") {
				t.Errorf("body %q", body)
			}
		})
	}

	t.Run("gRPC gets PERMISSION_DENIED", func(t *testing.T) {
		conn, err := grpc.NewClient(p.ListenerAddrs()["web"], grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		gc := grpc_testing.NewTestServiceClient(conn)
		_, err = gc.EmptyCall(t.Context(), &grpc_testing.Empty{})
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("EmptyCall: %v, want PermissionDenied", err)
		}
		if _, err := gc.UnaryCall(t.Context(), &grpc_testing.SimpleRequest{}); err != nil {
			t.Fatalf("UnaryCall (allowed): %v", err)
		}
	})

	t.Run("metrics count enforce and shadow decisions", func(t *testing.T) {
		m := scrape(t, p.AdminAddr())
		// Through the filter's own rules: denied /admin, DELETE /api, x-team and
		// EmptyCall; allowed /public, GET /api, DELETE /web and UnaryCall. The
		// shadow engine (GET only) would deny the DELETEs and both gRPC POSTs.
		for series, want := range map[string]float64{
			`trellis_rbac_decisions_total{filter="http",mode="enforce",result="denied",stat_prefix="inbound."}`:  4,
			`trellis_rbac_decisions_total{filter="http",mode="enforce",result="allowed",stat_prefix="inbound."}`: 4,
			`trellis_rbac_decisions_total{filter="http",mode="enforce",result="denied",stat_prefix="locked."}`:   1,
			`trellis_rbac_decisions_total{filter="http",mode="shadow",result="denied",stat_prefix="audit."}`:     4,
			`trellis_rbac_decisions_total{filter="http",mode="shadow",result="allowed",stat_prefix="audit."}`:    4,
		} {
			if v := metricValue(m, series); v != want {
				t.Errorf("%s = %v, want %v", series, v, want)
			}
		}
	})
}

// rbacShadowOnly has only shadow rules that would deny everything.
const rbacShadowOnly = `
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
` + webListener + `          route_config:
            virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: app}}]}]
          http_filters:
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              shadow_rules_stat_prefix: dry-run.
              shadow_rules: {action: DENY, policies: {everything: {permissions: [{any: true}], principals: [{any: true}]}}}
          - {name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
  clusters:
  - name: app
    load_assignment: {cluster_name: app, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .}}}}]}]}
`

func TestRBACShadowNeverBlocks(t *testing.T) {
	e := startEcho(t, "app")
	p := startProxy(t, rbacShadowOnly, e.Addr())
	for range 3 {
		resp, _ := do(t, http.DefaultClient, "GET", "http://"+p.ListenerAddrs()["web"]+"/admin", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("shadow rules blocked a request: %d", resp.StatusCode)
		}
	}
	m := scrape(t, p.AdminAddr())
	if v := metricValue(m, `trellis_rbac_decisions_total{filter="http",mode="shadow",result="denied",stat_prefix="dry-run."}`); v != 3 {
		t.Fatalf("shadow denials counted %v, want 3\n", v)
	}
	if strings.Contains(m, `mode="enforce"`) {
		t.Errorf("enforce decisions counted without rules")
	}
}

type rbacTLSData struct {
	CA, Cert, Key, Echo, Frontend string
}

// rbacMTLS: an mTLS inbound listener allowing only the frontend identity
// over HTTP, and a TLS-terminating tcp_proxy listener with network RBAC
// allowing only the frontend identity, plus a plaintext tcp_proxy listener
// whose network RBAC denies loopback sources.
const rbacMTLS = `
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources:
  listeners:
  - name: http
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_certificates: [{certificate_chain: {filename: "{{.Cert}}"}, private_key: {filename: "{{.Key}}"}}]
            validation_context: {trusted_ca: {filename: "{{.CA}}"}}
      filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: inbound
          normalize_path: true
          route_config:
            virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: app}}]}]
          http_filters:
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: ALLOW
                policies:
                  frontend:
                    permissions: [{any: true}]
                    principals: [{authenticated: {principal_name: {exact: "{{.Frontend}}"}}}]
          - {name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
  - name: tcp-mtls
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_certificates: [{certificate_chain: {filename: "{{.Cert}}"}, private_key: {filename: "{{.Key}}"}}]
            validation_context: {trusted_ca: {filename: "{{.CA}}"}}
      filters:
      - name: envoy.filters.network.rbac
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC
          stat_prefix: tcp-mtls.
          rules:
            action: ALLOW
            policies:
              frontend:
                permissions: [{any: true}]
                principals: [{authenticated: {principal_name: {exact: "{{.Frontend}}"}}}]
      - name: tcp
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: tcp-mtls, cluster: app}
  - name: tcp-plain
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.rbac
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC
          stat_prefix: tcp-plain.
          enforcement_type: CONTINUOUS
          rules:
            action: DENY
            policies:
              no-loopback:
                permissions: [{any: true}]
                principals: [{direct_remote_ip: {address_prefix: 127.0.0.0, prefix_len: 8}}]
      - name: tcp
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: tcp-plain, cluster: app}
  clusters:
  - name: app
    load_assignment: {cluster_name: app, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .Echo}}}}]}]}
`

func TestRBACAuthenticatedPrincipal(t *testing.T) {
	ca := certs.NewCA(t, "mesh-ca")
	srv := ca.Issue(t, certs.LeafOptions{CommonName: "b", DNSNames: []string{"b.mesh"}, URIs: []string{"spiffe://mesh.test/default/b"}})
	frontend := ca.Issue(t, certs.LeafOptions{CommonName: "frontend", URIs: []string{"spiffe://mesh.test/default/frontend"}})
	other := ca.Issue(t, certs.LeafOptions{CommonName: "other", URIs: []string{"spiffe://mesh.test/default/other"}})
	e := startEcho(t, "app")
	p := startProxy(t, rbacMTLS, rbacTLSData{CA: ca.File(), Cert: srv.CertFile, Key: srv.KeyFile, Echo: e.Addr(), Frontend: "spiffe://mesh.test/default/frontend"})
	client := func(l *certs.Leaf) *http.Client {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "b.mesh", Certificates: []tls.Certificate{l.TLS}}}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}

	t.Run("HTTP allows the frontend identity", func(t *testing.T) {
		resp, body := do(t, client(frontend), "GET", "https://"+p.ListenerAddrs()["http"]+"/x", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	})
	t.Run("HTTP denies another identity", func(t *testing.T) {
		resp, body := do(t, client(other), "GET", "https://"+p.ListenerAddrs()["http"]+"/x", nil)
		if resp.StatusCode != 403 || resp.Header.Get("X-Trellis-Reason") != "rbac_access_denied_matched_policy[none]" {
			t.Fatalf("%d %q %q", resp.StatusCode, resp.Header.Get("X-Trellis-Reason"), body)
		}
	})
	t.Run("network RBAC admits the frontend identity", func(t *testing.T) {
		resp, body := do(t, client(frontend), "GET", "https://"+p.ListenerAddrs()["tcp-mtls"]+"/x", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	})
	t.Run("network RBAC closes another identity's connection", func(t *testing.T) {
		conn, err := tls.Dial("tcp", p.ListenerAddrs()["tcp-mtls"], &tls.Config{RootCAs: ca.Pool(), ServerName: "b.mesh", Certificates: []tls.Certificate{other.TLS}})
		if err != nil {
			t.Fatal(err) // the handshake itself succeeds: the certificate is valid
		}
		defer conn.Close()
		expectClosed(t, conn)
	})
	t.Run("network RBAC denies by source IP", func(t *testing.T) {
		conn, err := net.Dial("tcp", p.ListenerAddrs()["tcp-plain"])
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		expectClosed(t, conn)
	})
	t.Run("network metrics", func(t *testing.T) {
		m := scrape(t, p.AdminAddr())
		for series, want := range map[string]float64{
			`trellis_rbac_decisions_total{filter="network",mode="enforce",result="allowed",stat_prefix="tcp-mtls."}`: 1,
			`trellis_rbac_decisions_total{filter="network",mode="enforce",result="denied",stat_prefix="tcp-mtls."}`:  1,
			`trellis_rbac_decisions_total{filter="network",mode="enforce",result="denied",stat_prefix="tcp-plain."}`: 1,
		} {
			if v := metricValue(m, series); v != want {
				t.Errorf("%s = %v, want %v", series, v, want)
			}
		}
	})
}

// expectClosed sends a request on conn and expects the proxy to close the
// connection without an answer.
func expectClosed(t *testing.T, conn net.Conn) {
	t.Helper()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	b, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the connection stayed open")
	}
	if len(b) > 0 {
		t.Fatalf("a denied connection got an answer: %q", b)
	}
}

func TestRBACAccessLog(t *testing.T) {
	e := startEcho(t, "app")
	logPath := filepath.Join(t.TempDir(), "access.log")
	p := startProxy(t, pathRBAC, pathData{Echo: e.Addr(), Paths: securePaths + `
          access_log: [{name: file, typed_config: {"@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: "` + logPath + `"}}]`})
	if status, _, _ := rawRequest(t, p.ListenerAddrs()["web"], "/public/%2e%2e/admin"); status != 403 {
		t.Fatalf("status %d", status)
	}
	var line map[string]any
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(logPath)
		if len(b) > 0 {
			if err := json.Unmarshal(bytes.TrimSpace(b), &line); err != nil {
				t.Fatalf("%v: %s", err, b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no access log line")
		}
		runtime.Gosched()
	}
	// The access log keeps the path as sent, with Envoy's response code
	// details naming the policy.
	if line["response_code"] != float64(403) || line["reason"] != "rbac_access_denied_matched_policy[admin]" || line["path"] != "/public/%2e%2e/admin" {
		t.Fatalf("access log line %v", line)
	}
}
