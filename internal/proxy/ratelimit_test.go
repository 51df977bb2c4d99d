package proxy_test

import (
	"io"
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
