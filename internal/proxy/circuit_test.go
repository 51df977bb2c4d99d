package proxy_test

import (
	"net/http"
	"path/filepath"
	"sync"
	"testing"
)

const breakerConfig = `
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
` + webListener + `          access_log: [{name: f, typed_config: {"@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: "{{.Log}}"}}]
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: "/"}
                route: {cluster: app, retry_policy: {retry_on: "5xx", num_retries: 3}}
          ` + routerFilter + `
  clusters:
  - name: app
    circuit_breakers: {thresholds: [{{.Thresholds}}]}
    load_assignment: {cluster_name: app, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .Upstream}}}}]}]}
`

type breakerData struct{ Log, Thresholds, Upstream string }

// holdAll answers only when released, so requests pile up in flight.
func holdAll(t *testing.T) (*upstream, chan struct{}, *sync.WaitGroup) {
	release := make(chan struct{})
	var arrived sync.WaitGroup
	u := newUpstream(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		arrived.Done()
		<-release
	})
	return u, release, &arrived
}

func TestCircuitBreakers(t *testing.T) {
	for _, tc := range []struct{ name, thresholds, reason string }{
		{name: "max_requests", thresholds: "{max_requests: 1}", reason: "upstream_overflow"},
		// max_connections queues requests (max_pending_requests): pending_test.go.
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, release, arrived := holdAll(t)
			p := startProxy(t, breakerConfig, breakerData{Log: filepath.Join(t.TempDir(), "a.log"), Thresholds: tc.thresholds, Upstream: u.addr()})
			url := "http://" + p.ListenerAddrs()["web"] + "/"
			arrived.Add(1)
			first := make(chan int)
			go func() {
				resp, err := http.Get(url)
				if err != nil {
					first <- 0
					return
				}
				resp.Body.Close()
				first <- resp.StatusCode
			}()
			arrived.Wait() // the first request is in flight at the upstream
			resp, _, body := get(t, http.DefaultClient, url, nil)
			close(release)
			if resp.StatusCode != 503 || resp.Header.Get("X-Trellis-Reason") != tc.reason {
				t.Fatalf("second request: %d %q %q", resp.StatusCode, resp.Header.Get("X-Trellis-Reason"), body)
			}
			if code := <-first; code != 200 {
				t.Fatalf("first request: %d", code)
			}
			if v := metricValue(scrape(t, p.AdminAddr()), `trellis_cluster_upstream_overflows_total{cluster="app",resource="`+map[string]string{"max_requests": "requests", "max_connections": "connections"}[tc.name]+`"}`); v != 1 {
				t.Errorf("overflow metric %v", v)
			}
		})
	}
	t.Run("retry budget of zero admits no retry", func(t *testing.T) {
		bad := newUpstream(t, "bad", answer(503))
		p := startProxy(t, breakerConfig, breakerData{Log: filepath.Join(t.TempDir(), "a.log"),
			Thresholds: "{retry_budget: {budget_percent: {value: 0}, min_retry_concurrency: 0}}", Upstream: bad.addr()})
		resp, _, _ := get(t, http.DefaultClient, "http://"+p.ListenerAddrs()["web"]+"/", nil)
		if resp.StatusCode != 503 || bad.calls.Load() != 1 {
			t.Fatalf("%d after %d calls", resp.StatusCode, bad.calls.Load())
		}
		if v := metricValue(scrape(t, p.AdminAddr()), `trellis_cluster_upstream_retry_overflows_total{cluster="app"}`); v != 1 {
			t.Errorf("retry overflow metric %v", v)
		}
	})
	t.Run("default max_retries allows retries", func(t *testing.T) {
		bad := newUpstream(t, "bad", answer(503))
		p := startProxy(t, breakerConfig, breakerData{Log: filepath.Join(t.TempDir(), "a.log"), Thresholds: "{}", Upstream: bad.addr()})
		get(t, http.DefaultClient, "http://"+p.ListenerAddrs()["web"]+"/", nil)
		if n := bad.calls.Load(); n != 4 {
			t.Fatalf("%d calls, want 1 + 3 retries", n)
		}
	})
}
