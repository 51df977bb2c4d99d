package proxy_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

const outlierConfig = `
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
` + webListener + `          route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: app}}]}]}
          ` + routerFilter + `
  clusters:
  - name: app
    outlier_detection: {consecutive_5xx: 3, base_ejection_time: 300s, max_ejection_percent: 100}
    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:
{{- range .}}
        - endpoint: {address: {{addr .}}}
{{- end}}
`

// TestOutlierEjection: a host answering only 503 is ejected after exactly
// consecutive_5xx failures and gets no more traffic; /clusters says so.
func TestOutlierEjection(t *testing.T) {
	bad := newUpstream(t, "bad", answer(503))
	good1 := newUpstream(t, "good1", answer(200))
	good2 := newUpstream(t, "good2", answer(200))
	p := startProxy(t, outlierConfig, []string{bad.addr(), good1.addr(), good2.addr()})
	failures := 0
	for range 60 {
		resp, err := http.Get("http://" + p.ListenerAddrs()["web"] + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			failures++
		}
	}
	if n := bad.calls.Load(); n != 3 || failures != 3 {
		t.Fatalf("bad host called %d times, %d failures; want 3 and 3", n, failures)
	}
	resp, err := http.Get("http://" + p.AdminAddr() + "/clusters")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "app::"+bad.addr()+"::health_flags::/failed_outlier_check") {
		t.Fatalf("/clusters:\n%s", b)
	}
	resp, err = http.Get("http://" + p.AdminAddr() + "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`trellis_cluster_outlier_ejections_total{cluster="app",type="consecutive_5xx"} 1`,
		`trellis_cluster_outlier_ejections_active{cluster="app"} 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
