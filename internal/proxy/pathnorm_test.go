package proxy_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// pathRBAC denies the /admin prefix; the connection manager's path
// options are filled in per test.
const pathRBAC = `
` + webListener + `{{.Paths}}
          route_config:
            virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: app}}]}]
          http_filters:
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: DENY
                policies:
                  admin:
                    permissions: [{url_path: {path: {prefix: "/admin"}}}]
                    principals: [{any: true}]
          - {name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
  clusters:
  - name: app
    load_assignment: {cluster_name: app, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .Echo}}}}]}]}
`

// The settings the control plane gives every inbound listener.
const securePaths = `          normalize_path: true
          merge_slashes: true
          path_with_escaped_slashes_action: UNESCAPE_AND_FORWARD`

type pathData struct{ Echo, Paths string }

// rawRequest sends target verbatim in an HTTP/1.1 request line, so that
// no client library cleans it, and returns the status, the reason header
// and the path the upstream saw (empty when it was not reached).
func rawRequest(t *testing.T, addr, target string) (int, string, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "GET "+target+" HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s: %v", target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var er struct{ Path string }
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(body, &er); err != nil {
			t.Fatalf("%s: %v: %s", target, err, body)
		}
	}
	return resp.StatusCode, resp.Header.Get("X-Trellis-Reason"), er.Path
}

// TestPathNormalizationBypasses sends one request per known class of
// path-normalization bypass (the Envoy and Istio advisories: dot segments,
// encoded dots, encoded and doubled slashes, backslashes, mixed-case
// escapes, path parameters, fragments, query confusion). With the secure
// settings none reaches the upstream as an /admin path: each is denied by
// the rule on the normalized path (403) or refused as malformed (400).
func TestPathNormalizationBypasses(t *testing.T) {
	e := startEcho(t, "app")
	p := startProxy(t, pathRBAC, pathData{Echo: e.Addr(), Paths: securePaths})
	addr := p.ListenerAddrs()["web"]
	const denied = "rbac_access_denied_matched_policy[admin]"
	for _, tc := range []struct {
		class, target string
		status        int
		reason        string
	}{
		{"plain", "/admin", 403, denied},
		{"dot-dot segment", "/public/../admin", 403, denied},
		{"dot segment", "/./admin", 403, denied},
		{"dot-dot above the root", "/../../admin/x", 403, denied},
		{"encoded dot-dot", "/public/%2e%2e/admin", 403, denied},
		{"mixed-case encoded dot-dot", "/public/%2E%2e/admin", 403, denied},
		{"half-encoded dot-dot", "/public/.%2e/admin", 403, denied},
		{"encoded slash", "/%2Fadmin", 403, denied},
		{"lower-case encoded slash", "/public%2f..%2fadmin", 403, denied},
		{"encoded slash with dot-dot", "/public%2F..%2Fadmin", 403, denied},
		{"double slash", "//admin", 403, denied},
		{"many slashes", "///admin///users", 403, denied},
		{"backslash", "/public\\..\\admin", 403, denied},
		{"encoded backslash", "/public%5C..%5Cadmin", 403, denied},
		{"lower-case encoded backslash", "/public%5c..%5cadmin", 403, denied},
		{"encoded unreserved letters", "/%61dmin", 403, denied},
		{"path parameters", "/admin;jsessionid=1", 403, denied},
		{"dot-dot with path parameters", "/public/..;/admin", 400, "path_normalization_failed"},
		{"encoded question mark then dot-dot", "/public%3F/../admin", 403, denied},
		{"query hiding the path", "/admin?/public", 403, denied},
		{"fragment", "/public#/../admin", 400, "path_normalization_failed"},
		{"encoded NUL", "/admin%00.html", 400, "path_normalization_failed"},
		{"malformed escape", "/adm%Gin", 400, ""},
	} {
		t.Run(tc.class, func(t *testing.T) {
			status, reason, path := rawRequest(t, addr, tc.target)
			if status != tc.status || tc.reason != "" && reason != tc.reason {
				t.Fatalf("%s: %d %q (upstream path %q), want %d %q", tc.target, status, reason, path, tc.status, tc.reason)
			}
		})
	}

	// Requests that are not bypasses still work, and the upstream sees the
	// normalized path the rule was checked against.
	for _, tc := range []struct{ target, upstream string }{
		{"/admin/../public", "/public"},
		{"/public//a/./b", "/public/a/b"},
		{"/public?/../admin", "/public"},
		{"/%70ublic", "/public"},
	} {
		status, reason, path := rawRequest(t, addr, tc.target)
		if status != 200 || path != tc.upstream {
			t.Errorf("%s: %d %q, upstream saw %q, want 200 and %q", tc.target, status, reason, path, tc.upstream)
		}
	}
}

// TestPathNormalizationOffIsBypassable shows why RBAC path rules need
// normalize_path: with Envoy's defaults the dot segment hides /admin from
// the rule, and the path reaches the upstream unchanged.
func TestPathNormalizationOffIsBypassable(t *testing.T) {
	e := startEcho(t, "app")
	p := startProxy(t, pathRBAC, pathData{Echo: e.Addr()})
	status, _, _ := rawRequest(t, p.ListenerAddrs()["web"], "/public/../admin")
	if status != 200 {
		t.Fatalf("got %d; with normalization off the rule is expected not to match", status)
	}
}

func TestPathEscapedSlashActions(t *testing.T) {
	e := startEcho(t, "app")
	t.Run("REJECT_REQUEST", func(t *testing.T) {
		p := startProxy(t, pathRBAC, pathData{Echo: e.Addr(), Paths: "          path_with_escaped_slashes_action: REJECT_REQUEST"})
		status, reason, _ := rawRequest(t, p.ListenerAddrs()["web"], "/a%2Fb")
		if status != 400 || reason != "path_normalization_failed" {
			t.Fatalf("%d %q", status, reason)
		}
	})
	t.Run("UNESCAPE_AND_REDIRECT", func(t *testing.T) {
		p := startProxy(t, pathRBAC, pathData{Echo: e.Addr(), Paths: "          normalize_path: true\n          path_with_escaped_slashes_action: UNESCAPE_AND_REDIRECT"})
		conn, err := net.Dial("tcp", p.ListenerAddrs()["web"])
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, _ = io.WriteString(conn, "GET /x%2F..%2Fy?q=1 HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 307 || resp.Header.Get("Location") != "/y?q=1" {
			t.Fatalf("%d Location %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
}
