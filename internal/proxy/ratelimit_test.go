package proxy_test

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/internal/echo"
)

// TestNetworkLocalRateLimit: local_ratelimit before tcp_proxy admits
// max_tokens connections and closes the next one at once.
func TestNetworkLocalRateLimit(t *testing.T) {
	e := startEcho(t, "tcp", func(o *echo.Options) { o.TCPAddr = "127.0.0.1:0" })
	p := startProxy(t, `
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources:
  listeners:
  - name: tcp
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit
          stat_prefix: limited
          token_bucket: {max_tokens: 2, fill_interval: 3600s}
      - {name: tcp, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: raw, cluster: echo}}
  clusters:
  - name: echo
    load_assignment: {cluster_name: echo, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .}}}}]}]}
`, e.TCPAddr())
	echoOnce := func() error {
		c, err := dialTCP(p.ListenerAddrs()["tcp"])
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "hi"); err != nil {
			return err
		}
		c.CloseWrite()
		b, err := io.ReadAll(c)
		if err == nil && string(b) != "hi" {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	for i := range 2 {
		if err := echoOnce(); err != nil {
			t.Fatalf("connection %d within the bucket: %v", i, err)
		}
	}
	if err := echoOnce(); err == nil {
		t.Fatal("the third connection was served; the bucket holds two tokens")
	}
	m := scrape(t, p.AdminAddr())
	if v := metricValue(m, `trellis_network_rate_limited_total{stat_prefix="limited"}`); v != 1 {
		t.Fatalf("rate-limited metric %v", v)
	}
	if ok, lim := metricValue(m, `trellis_ratelimit_decisions_total{filter="network_local_ratelimit",result="ok",stat_prefix="limited"}`),
		metricValue(m, `trellis_ratelimit_decisions_total{filter="network_local_ratelimit",result="limited",stat_prefix="limited"}`); ok != 2 || lim != 1 {
		t.Fatalf("decisions: ok %v limited %v, want 2 and 1", ok, lim)
	}
}

const httpRateLimitConfig = `
` + webListener + `          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: "/shadow"}
                route: {cluster: app}
                typed_per_filter_config:
                  envoy.filters.http.local_ratelimit:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
                    stat_prefix: shadow
                    token_bucket: {max_tokens: 1, fill_interval: 3600s}
                    filter_enabled: {default_value: {numerator: 100}}
              - match: {prefix: "/"}
                route: {cluster: app}
          http_filters:
          - name: envoy.filters.http.local_ratelimit
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
              stat_prefix: edge
              token_bucket: {max_tokens: 2, fill_interval: 3600s}
              filter_enabled: {default_value: {numerator: 100}}
              filter_enforced: {default_value: {numerator: 100}}
              response_headers_to_add: [{header: {key: x-ratelimited, value: "yes"}}]
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: app
    load_assignment: {cluster_name: app, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .}}}}]}]}
`

func TestHTTPLocalRateLimit(t *testing.T) {
	e := startEcho(t, "e")
	p := startProxy(t, httpRateLimitConfig, e.Addr())
	base := "http://" + p.ListenerAddrs()["web"]
	for i := range 2 {
		if resp, _, _ := get(t, http.DefaultClient, base+"/", nil); resp.StatusCode != 200 {
			t.Fatalf("request %d within the bucket: %d", i, resp.StatusCode)
		}
	}
	resp, _, body := get(t, http.DefaultClient, base+"/", nil)
	if resp.StatusCode != 429 || resp.Header.Get("X-Trellis-Reason") != "local_rate_limited" || resp.Header.Get("X-Ratelimited") != "yes" {
		t.Fatalf("third request: %d %q %q", resp.StatusCode, resp.Header.Get("X-Trellis-Reason"), body)
	}
	// The route's own configuration: its own bucket, enabled but not
	// enforced (shadow mode), so nothing is refused.
	for i := range 3 {
		if resp, _, _ := get(t, http.DefaultClient, base+"/shadow", nil); resp.StatusCode != 200 {
			t.Fatalf("shadow request %d: %d", i, resp.StatusCode)
		}
	}
}

const descriptorRateLimitConfig = `
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
` + webListener + `          access_log: [{name: f, typed_config: {"@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: "{{.Log}}"}}]
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              rate_limits: [{actions: [{generic_key: {descriptor_value: everyone}}]}]
              routes:
              - match: {prefix: "/api"}
                route:
                  cluster: app
                  rate_limits:
                  - actions: [{request_headers: {header_name: x-user, descriptor_key: user}}]
                  - stage: 1
                    actions: [{remote_address: {}}]
              - match: {prefix: "/"}
                route: {cluster: app}
          http_filters:
          - name: envoy.filters.http.local_ratelimit
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
              stat_prefix: users
              token_bucket: {max_tokens: 1000, fill_interval: 3600s}
              filter_enabled: {default_value: {numerator: 100}}
              filter_enforced: {default_value: {numerator: 100}}
              enable_x_ratelimit_headers: DRAFT_VERSION_03
              always_consume_default_token_bucket: false
              descriptors:
              - entries: [{key: user, value: ann}]
                token_bucket: {max_tokens: 2, fill_interval: 3600s}
              - entries: [{key: generic_key, value: everyone}]
                token_bucket: {max_tokens: 3, fill_interval: 3600s}
              - entries: [{key: remote_address, value: 127.0.0.1}]
                token_bucket: {max_tokens: 1, fill_interval: 3600s}
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: app
    load_assignment: {cluster_name: app, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .Echo}}}}]}]}
`

// TestHTTPLocalRateLimitDescriptors: descriptors built by route and
// virtual host rate_limits select their own buckets; stage 1 actions are
// ignored by a stage 0 filter; x-ratelimit-* headers, the access log and
// the metrics report each decision.
func TestHTTPLocalRateLimitDescriptors(t *testing.T) {
	e := startEcho(t, "e")
	logPath := filepath.Join(t.TempDir(), "access.log")
	p := startProxy(t, descriptorRateLimitConfig, map[string]string{"Echo": e.Addr(), "Log": logPath})
	base := "http://" + p.ListenerAddrs()["web"]
	ann := map[string]string{"X-User": "ann"}
	for i := range 2 {
		resp, _, _ := get(t, http.DefaultClient, base+"/api", ann)
		if resp.StatusCode != 200 {
			t.Fatalf("ann's request %d: %d", i, resp.StatusCode)
		}
		if l, r, s := resp.Header.Get("X-Ratelimit-Limit"), resp.Header.Get("X-Ratelimit-Remaining"), resp.Header.Get("X-Ratelimit-Reset"); l != "2" || r != strconv.Itoa(1-i) || s != "3600" {
			t.Fatalf("ann's request %d: x-ratelimit limit %q remaining %q reset %q", i, l, r, s)
		}
	}
	resp, _, body := get(t, http.DefaultClient, base+"/api", ann)
	if resp.StatusCode != 429 || resp.Header.Get("X-Trellis-Reason") != "local_rate_limited" || resp.Header.Get("X-Ratelimit-Remaining") != "0" {
		t.Fatalf("ann's third request: %d %q %q remaining %q", resp.StatusCode, resp.Header.Get("X-Trellis-Reason"), body, resp.Header.Get("X-Ratelimit-Remaining"))
	}
	// Another user matches no descriptor on /api (the route has its own
	// rate_limits, so the virtual host's are overridden; the stage 1
	// remote_address action is not this filter's): the default bucket.
	for i := range 5 {
		if resp, _, _ := get(t, http.DefaultClient, base+"/api", map[string]string{"X-User": "bob"}); resp.StatusCode != 200 || resp.Header.Get("X-Ratelimit-Limit") != "1000" {
			t.Fatalf("bob's request %d: %d limit %q", i, resp.StatusCode, resp.Header.Get("X-Ratelimit-Limit"))
		}
	}
	// "/" has no rate_limits of its own: the virtual host's generic_key.
	for i := range 3 {
		if resp, _, _ := get(t, http.DefaultClient, base+"/", nil); resp.StatusCode != 200 {
			t.Fatalf("request %d on /: %d", i, resp.StatusCode)
		}
	}
	if resp, _, _ := get(t, http.DefaultClient, base+"/", nil); resp.StatusCode != 429 {
		t.Fatalf("fourth request on /: %d, want 429 from the virtual host's descriptor", resp.StatusCode)
	}
	log, _ := os.ReadFile(logPath)
	if !bytes.Contains(log, []byte(`"response_flags":"RL"`)) || !bytes.Contains(log, []byte(`"reason":"local_rate_limited"`)) {
		t.Fatalf("access log has no RL entry with its reason:\n%s", log)
	}
	m := scrape(t, p.AdminAddr())
	for series, want := range map[string]float64{
		`trellis_ratelimit_decisions_total{filter="http_local_ratelimit",result="ok",stat_prefix="users"}`:      10,
		`trellis_ratelimit_decisions_total{filter="http_local_ratelimit",result="limited",stat_prefix="users"}`: 2,
	} {
		if v := metricValue(m, series); v != want {
			t.Errorf("%s = %v, want %v", series, v, want)
		}
	}
}

// TestHTTPLocalRateLimitPerConnection: with
// local_rate_limit_per_downstream_connection each client connection has
// its own bucket.
func TestHTTPLocalRateLimitPerConnection(t *testing.T) {
	e := startEcho(t, "e")
	cfg := strings.Replace(httpRateLimitConfig, "stat_prefix: edge\n", "stat_prefix: edge\n              local_rate_limit_per_downstream_connection: true\n", 1)
	p := startProxy(t, cfg, e.Addr())
	base := "http://" + p.ListenerAddrs()["web"]
	for c := range 2 {
		tr := &http.Transport{}
		t.Cleanup(tr.CloseIdleConnections)
		client := &http.Client{Transport: tr} // one keep-alive connection
		for i := range 2 {
			if resp, _, _ := get(t, client, base+"/", nil); resp.StatusCode != 200 {
				t.Fatalf("connection %d, request %d within its bucket: %d", c, i, resp.StatusCode)
			}
		}
		if resp, _, _ := get(t, client, base+"/", nil); resp.StatusCode != 429 {
			t.Fatalf("connection %d, third request: %d, want 429", c, resp.StatusCode)
		}
	}
}
