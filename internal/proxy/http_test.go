package proxy_test

import (
	"bufio"
	"crypto/sha256"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const routingConfig = `
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
` + webListener + `          use_remote_address: true
          access_log:
          - name: file
            typed_config: {"@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: "{{.Log}}"}
          route_config:
            name: rc
            response_headers_to_add: [{header: {key: x-global, value: g}}]
            virtual_hosts:
            - name: app
              domains: ["app.local"]
              response_headers_to_add: [{header: {key: x-vhost, value: app}}]
              routes:
              - name: canary
                match: {prefix: "/", headers: [{name: x-canary, string_match: {exact: "1"}}]}
                route: {cluster: b}
              - name: split
                match: {prefix: "/split"}
                route: {weighted_clusters: {clusters: [{name: a, weight: 75}, {name: b, weight: 25}]}}
              - name: by-header
                match: {prefix: "/pick"}
                route: {cluster_header: x-cluster}
              - name: rewrite
                match: {prefix: "/api/"}
                route: {cluster: a, prefix_rewrite: "/v2/", host_rewrite_literal: "rewritten.local"}
                request_headers_to_add: [{header: {key: x-added, value: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"}}]
                request_headers_to_remove: [x-drop]
                response_headers_to_add: [{header: {key: x-route, value: rewrite}}]
              - name: slow
                match: {prefix: "/slow"}
                route: {cluster: a, timeout: 0.2s}
              - name: down
                match: {prefix: "/down"}
                route: {cluster: dead}
              - name: empty
                match: {prefix: "/empty"}
                route: {cluster: empty}
              - name: direct
                match: {path: "/health"}
                direct_response: {status: 200, body: {inline_string: "fine"}}
              - name: moved
                match: {prefix: "/old/"}
                redirect: {prefix_rewrite: "/new/", response_code: FOUND}
              - name: default
                match: {prefix: "/"}
                route: {cluster: a}
          ` + routerFilter + `
  clusters:
  - name: a
    load_assignment: {cluster_name: a, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .A}}}}]}]}
  - name: b
    load_assignment: {cluster_name: b, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .B}}}}]}]}
  - name: dead
    connect_timeout: 1s
    load_assignment: {cluster_name: dead, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .Dead}}}}]}]}
  - name: empty
`

type routingData struct{ A, B, Dead, Log string }

func routingSetup(t *testing.T) (string, routingData) {
	a, b := startEcho(t, "a"), startEcho(t, "b")
	dead := startEcho(t, "dead")
	d := routingData{A: a.Addr(), B: b.Addr(), Dead: dead.Addr(), Log: filepath.Join(t.TempDir(), "access.log")}
	if err := dead.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, routingConfig, d)
	return "http://" + p.ListenerAddrs()["web"], d
}

func TestRouting(t *testing.T) {
	base, d := routingSetup(t)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	host := map[string]string{"Host": "app.local"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{"Host": "app.local"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}

	t.Run("default route and response headers from every level", func(t *testing.T) {
		resp, er, _ := get(t, c, base+"/x?q=1", host)
		if resp.StatusCode != 200 || er.Name != "a" || er.Path != "/x" {
			t.Fatalf("status %d name %q path %q", resp.StatusCode, er.Name, er.Path)
		}
		if resp.Header.Get("X-Vhost") != "app" || resp.Header.Get("X-Global") != "g" {
			t.Errorf("response headers: %v", resp.Header)
		}
		if er.Headers["X-Request-Id"] == nil || er.Headers["X-Forwarded-For"][0] != "127.0.0.1" || er.Headers["X-Forwarded-Proto"][0] != "http" {
			t.Errorf("forwarding headers: %v", er.Headers)
		}
	})
	t.Run("header match", func(t *testing.T) {
		_, er, _ := get(t, c, base+"/x", with("X-Canary", "1"))
		if er.Name != "b" {
			t.Fatalf("got %q", er.Name)
		}
	})
	t.Run("cluster_header", func(t *testing.T) {
		_, er, _ := get(t, c, base+"/pick", with("X-Cluster", "b"))
		if er.Name != "b" {
			t.Fatalf("got %q", er.Name)
		}
		resp, _, body := get(t, c, base+"/pick", with("X-Cluster", "nope"))
		if resp.StatusCode != 404 || resp.Header.Get("X-Trellis-Reason") != "cluster_not_found" || !strings.Contains(body, `"nope"`) {
			t.Fatalf("status %d reason %q body %q", resp.StatusCode, resp.Header.Get("X-Trellis-Reason"), body)
		}
	})
	t.Run("rewrites and request header mutations", func(t *testing.T) {
		resp, er, _ := get(t, c, base+"/api/users?x=1", with("X-Drop", "secret"))
		if er.Path != "/v2/users" || er.Host != "rewritten.local" || er.Query["x"][0] != "1" {
			t.Fatalf("path %q host %q query %v", er.Path, er.Host, er.Query)
		}
		if er.Headers["X-Drop"] != nil || er.Headers["X-Added"][0] != "127.0.0.1" {
			t.Errorf("headers: %v", er.Headers)
		}
		if resp.Header.Get("X-Route") != "rewrite" {
			t.Errorf("route response header missing")
		}
	})
	t.Run("weighted split", func(t *testing.T) {
		counts := map[string]int{}
		for range 400 {
			_, er, _ := get(t, c, base+"/split", host)
			counts[er.Name]++
		}
		// 75/25 over 400 requests: the standard deviation is about 8.7.
		if counts["a"] < 250 || counts["a"] > 350 || counts["a"]+counts["b"] != 400 {
			t.Fatalf("split %v", counts)
		}
	})
	t.Run("direct response and redirect", func(t *testing.T) {
		resp, _, body := get(t, c, base+"/health", host)
		if resp.StatusCode != 200 || body != "fine" {
			t.Fatalf("direct: %d %q", resp.StatusCode, body)
		}
		resp, _, _ = get(t, c, base+"/old/page?x=1", host)
		if resp.StatusCode != 302 || resp.Header.Get("Location") != "http://app.local/new/page?x=1" {
			t.Fatalf("redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
	t.Run("no route", func(t *testing.T) {
		resp, _, body := get(t, c, base+"/x", map[string]string{"Host": "other.local"})
		if resp.StatusCode != 404 || resp.Header.Get("X-Trellis-Reason") != "no_route" || !strings.Contains(body, `host "other.local"`) {
			t.Fatalf("%d %q %q", resp.StatusCode, resp.Header.Get("X-Trellis-Reason"), body)
		}
	})
	t.Run("upstream connect failure", func(t *testing.T) {
		resp, _, body := get(t, c, base+"/down", host)
		if resp.StatusCode != 503 || resp.Header.Get("X-Trellis-Reason") != "upstream_connect_failure" ||
			!strings.Contains(body, `cluster "dead"`) || !strings.Contains(body, d.Dead) {
			t.Fatalf("%d %q %q", resp.StatusCode, resp.Header.Get("X-Trellis-Reason"), body)
		}
	})
	t.Run("no healthy upstream", func(t *testing.T) {
		resp, _, body := get(t, c, base+"/empty", host)
		if resp.StatusCode != 503 || resp.Header.Get("X-Trellis-Reason") != "no_healthy_upstream" || !strings.Contains(body, `"empty"`) {
			t.Fatalf("%d %q %q", resp.StatusCode, resp.Header.Get("X-Trellis-Reason"), body)
		}
	})
	t.Run("route timeout", func(t *testing.T) {
		resp, _, body := get(t, c, base+"/slow?delay=5s", host)
		if resp.StatusCode != 504 || resp.Header.Get("X-Trellis-Reason") != "upstream_timeout" || !strings.Contains(body, "200ms") {
			t.Fatalf("%d %q %q", resp.StatusCode, resp.Header.Get("X-Trellis-Reason"), body)
		}
	})
	t.Run("upstream status passes through", func(t *testing.T) {
		resp, _, _ := get(t, c, base+"/x?status=418", host)
		if resp.StatusCode != 418 || resp.Header.Get("X-Trellis-Reason") != "" {
			t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("X-Trellis-Reason"))
		}
	})
	t.Run("access log has flags and reasons", func(t *testing.T) {
		f, err := os.Open(d.Log)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var uf, ut, nr bool
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			l := sc.Text()
			uf = uf || strings.Contains(l, `"response_flags":"UF"`) && strings.Contains(l, `"reason":"upstream_connect_failure"`)
			ut = ut || strings.Contains(l, `"response_flags":"UT"`) && strings.Contains(l, `"response_code":504`)
			nr = nr || strings.Contains(l, `"response_flags":"NR"`)
		}
		if !uf || !ut || !nr {
			t.Fatalf("access log lacks entries: UF %v UT %v NR %v", uf, ut, nr)
		}
	})
}

// TestLargeBodies streams bodies far larger than any buffer both ways.
func TestLargeBodies(t *testing.T) {
	base, _ := routingSetup(t)
	const size = 64 << 20
	t.Run("upload echoed back", func(t *testing.T) {
		pr, pw := io.Pipe()
		want := sha256.New()
		go func() {
			buf := make([]byte, 1<<20)
			for i := range size / len(buf) {
				for j := range buf {
					buf[j] = byte(i + j)
				}
				want.Write(buf)
				if _, err := pw.Write(buf); err != nil {
					return
				}
			}
			pw.Close()
		}()
		req, _ := http.NewRequest("POST", base+"/x?echo_body=1", pr)
		req.Host = "app.local"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got := sha256.New()
		n, err := io.Copy(got, resp.Body)
		if err != nil || n != size {
			t.Fatalf("read %d bytes: %v", n, err)
		}
		if string(got.Sum(nil)) != string(want.Sum(nil)) {
			t.Fatal("body changed in transit")
		}
	})
	t.Run("download", func(t *testing.T) {
		req, _ := http.NewRequest("GET", base+"/x?size=67108864", nil)
		req.Host = "app.local"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil || n != size {
			t.Fatalf("read %d: %v", n, err)
		}
	})
}
