package proxy_test

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

const unejectConfig = `
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
` + webListener + `          route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: app}}]}]}
          ` + routerFilter + `
  clusters:
  - name: app
    health_checks:
    - timeout: 1s
      interval: 0.05s
      unhealthy_threshold: 1000
      healthy_threshold: 1
      # 503 counts towards unhealthy_threshold instead of failing the host
      # at once, so only outlier detection takes the host out.
      http_health_check: {path: /healthz, retriable_statuses: [{start: 503, end: 504}]}
    outlier_detection:
      consecutive_5xx: 3
      base_ejection_time: 300s
      max_ejection_percent: 100
      {{- if .Uneject}}{{else}}
      successful_active_health_check_uneject_host: false{{end}}
    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {{addr .Sick}}}
        - endpoint: {address: {{addr .Steady}}}
`

// TestSuccessfulHealthCheckUnejects: an upstream that fails (requests and
// health checks alike) is ejected by outlier detection; once it recovers,
// its first passing health check returns it to service long before
// base_ejection_time (300s), as Envoy's default
// successful_active_health_check_uneject_host does. With the option off the
// host stays ejected though its checks pass.
func TestSuccessfulHealthCheckUnejects(t *testing.T) {
	for _, uneject := range []bool{true, false} {
		name := map[bool]string{true: "default", false: "option off"}[uneject]
		t.Run(name, func(t *testing.T) {
			var broken atomic.Bool
			var checks atomic.Int64
			sick := newUpstream(t, "sick", func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/healthz" {
					checks.Add(1)
				}
				if broken.Load() {
					w.WriteHeader(503)
				}
			})
			steady := newUpstream(t, "steady", answer(200))
			p := startProxy(t, unejectConfig, struct {
				Sick, Steady string
				Uneject      bool
			}{sick.addr(), steady.addr(), uneject})
			base := "http://" + p.ListenerAddrs()["web"] + "/"
			sickFlags := "app::" + sick.addr() + "::health_flags::"
			// Hosts of a health-checked cluster start failed until their
			// first check passes; then the upstream breaks.
			waitHost(t, p.AdminAddr(), sickFlags+"healthy")
			broken.Store(true)

			// Traffic until the sick host is ejected (3 consecutive 5xx).
			deadline := time.Now().Add(10 * time.Second)
			for sick.calls.Load()-checks.Load() < 3 {
				get(t, http.DefaultClient, base, nil)
				if time.Now().After(deadline) {
					t.Fatal("the sick host never got 3 requests")
				}
			}
			waitHost(t, p.AdminAddr(), sickFlags+"/failed_outlier_check")
			// Failing checks do not return it: wait for 10 more of them.
			for n := checks.Load() + 10; checks.Load() < n; {
				waitHost(t, p.AdminAddr(), sickFlags+"/failed_outlier_check")
			}

			broken.Store(false)
			if !uneject {
				for n := checks.Load() + 10; checks.Load() < n; {
					waitHost(t, p.AdminAddr(), sickFlags+"/failed_outlier_check")
				}
				return
			}
			waitHost(t, p.AdminAddr(), sickFlags+"healthy")
			before := sick.calls.Load() - checks.Load()
			for range 20 {
				if resp, _, _ := get(t, http.DefaultClient, base, nil); resp.StatusCode != 200 {
					t.Fatalf("status %d after the host recovered", resp.StatusCode)
				}
			}
			if sick.calls.Load()-checks.Load() == before {
				t.Fatal("the un-ejected host gets no traffic")
			}
		})
	}
}
