package proxy_test

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const healthConfig = `
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
` + webListener + `          route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: app}}]}]}
          ` + routerFilter + `
  clusters:
  - name: app
    health_checks:
    - timeout: 1s
      interval: 0.05s
      unhealthy_threshold: 1
      healthy_threshold: 1
      http_health_check: {path: /healthz}
    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:
{{- range .}}
        - endpoint: {address: {{addr .}}}
{{- end}}
`

// TestActiveHealthChecks: a host failing its HTTP health check gets no
// traffic and returns once it passes again.
func TestActiveHealthChecks(t *testing.T) {
	var sick atomic.Bool
	sick.Store(true)
	flaky := newUpstream(t, "flaky", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" && sick.Load() {
			w.WriteHeader(503)
		}
	})
	steady := newUpstream(t, "steady", answer(200))
	p := startProxy(t, healthConfig, []string{flaky.addr(), steady.addr()})
	base := "http://" + p.ListenerAddrs()["web"]

	waitFlags := func(want string) {
		t.Helper()
		waitHost(t, p.AdminAddr(), "app::"+flaky.addr()+"::health_flags::"+want)
		waitHost(t, p.AdminAddr(), "app::"+steady.addr()+"::health_flags::healthy")
	}
	waitFlags("/failed_active_hc")
	// The pickers are rebuilt just after the flags change: allow that
	// moment, then require a long run of requests that all avoid the host.
	deadline := time.Now().Add(10 * time.Second)
	for run := 0; run < 50; {
		resp, _, _ := get(t, http.DefaultClient, base+"/", nil)
		if resp.Header.Get("X-Upstream") == "steady" {
			run++
			continue
		}
		run = 0
		if time.Now().After(deadline) {
			t.Fatal("requests still reach the host that fails its health check")
		}
	}
	sick.Store(false)
	waitFlags("healthy")
	seen := map[string]bool{}
	for range 20 {
		resp, _, _ := get(t, http.DefaultClient, base+"/", nil)
		seen[resp.Header.Get("X-Upstream")] = true
	}
	if !seen["flaky"] {
		t.Fatalf("the recovered host gets no traffic: %v", seen)
	}
}

// waitHost polls /clusters until it contains line.
func waitHost(t *testing.T, admin, line string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/clusters")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), line) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/clusters never showed %q:\n%s", line, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
