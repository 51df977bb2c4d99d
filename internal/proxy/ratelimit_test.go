package proxy_test

import (
	"io"
	"net/http"
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
	if v := metricValue(scrape(t, p.AdminAddr()), `trellis_network_rate_limited_total{stat_prefix="limited"}`); v != 1 {
		t.Fatalf("rate-limited metric %v", v)
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
