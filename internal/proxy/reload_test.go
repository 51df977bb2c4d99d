package proxy_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const reloadConfig = `
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources:
  listeners:
  - name: web
    address: {socket_address: {address: 127.0.0.1, port_value: {{.Port}}}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: web
          route_config:
            response_headers_to_add: [{header: {key: x-config-version, value: "{{.Version}}"}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}]
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: [{match: {prefix: "/"}, route: {cluster: {{.Cluster}}}}]
          ` + routerFilter + `
  clusters:
  - name: a
    load_assignment: {cluster_name: a, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .A}}}}]}]}
  - name: b
    load_assignment: {cluster_name: b, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .B}}}}]}]}
`

type reloadData struct {
	Port    string
	Version int
	Cluster string
	A, B    string
}

// TestReloadUnderLoad swaps configurations while clients send a steady
// stream of requests over keep-alive connections: no request fails, the
// listening socket stays, and unchanged clusters keep their connections.
func TestReloadUnderLoad(t *testing.T) {
	ea, eb := startEcho(t, "a"), startEcho(t, "b")
	d := reloadData{Port: "0", Version: 0, Cluster: "a", A: ea.Addr(), B: eb.Addr()}
	p := startProxy(t, reloadConfig, d)
	addr := p.ListenerAddrs()["web"]
	d.Port = addr[strings.LastIndexByte(addr, ':')+1:]
	url := "http://" + addr + "/"

	var ok, failed atomic.Int64
	var lastVersion atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 5 * time.Second}
			defer c.CloseIdleConnections()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(url)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, resp.Status)
					continue
				}
				var v int64
				fmt.Sscan(resp.Header.Get("X-Config-Version"), &v)
				for {
					cur := lastVersion.Load()
					if v <= cur || lastVersion.CompareAndSwap(cur, v) {
						break
					}
				}
				ok.Add(1)
			}
		}()
	}
	const reloads = 30
	for i := 1; i <= reloads; i++ {
		d.Version = i
		d.Cluster = []string{"a", "b"}[i%2]
		if err := apply(t, p, reloadConfig, d); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		// Wait until traffic shows the new configuration.
		deadline := time.Now().Add(5 * time.Second)
		for lastVersion.Load() < int64(i) {
			if time.Now().After(deadline) {
				t.Fatalf("version %d never observed", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
	// An invalid configuration is refused and the current one stays.
	bad := reloadConfig + "  - name: a\n"
	if err := apply(t, p, bad, d); err == nil || !strings.Contains(err.Error(), "duplicate cluster") {
		t.Fatalf("bad reload: %v", err)
	}
	close(stop)
	wg.Wait()
	if f := failed.Load(); f != 0 {
		t.Fatalf("%d of %d requests failed across %d reloads; first: %v", f, f+ok.Load(), reloads, firstErr.Load())
	}
	if got := p.ListenerAddrs()["web"]; got != addr {
		t.Errorf("listener moved from %s to %s", addr, got)
	}
	m := scrape(t, p.AdminAddr())
	for _, c := range []string{"a", "b"} {
		// 4 client connections at most per cluster; a pool rebuilt on every
		// reload would show about 4 per reload.
		if v := metricValue(m, `trellis_cluster_upstream_connections_total{cluster="`+c+`"}`); v > 8 {
			t.Errorf("cluster %s opened %v upstream connections over %d reloads: pools not kept", c, v, reloads)
		}
	}
	t.Logf("%d requests, 0 failed, %d reloads", ok.Load(), reloads)
}
