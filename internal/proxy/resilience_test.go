package proxy_test

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// flakyServer is a real upstream that can fail half its requests, be
// killed outright and come back on the same address.
type flakyServer struct {
	addr     string
	failHalf atomic.Bool
	mu       sync.Mutex
	srv      *http.Server
}

func newFlakyServer(t *testing.T) *flakyServer {
	f := &flakyServer{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	f.serve(ln)
	t.Cleanup(f.kill)
	return f
}

func (f *flakyServer) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if f.failHalf.Load() && rand.IntN(2) == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	})}
	f.mu.Lock()
	f.srv = srv
	f.mu.Unlock()
	go srv.Serve(ln)
}

func (f *flakyServer) kill() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.srv != nil {
		f.srv.Close()
		f.srv = nil
	}
}

func (f *flakyServer) revive(t *testing.T) {
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		t.Fatalf("revive %s: %v", f.addr, err)
	}
	f.serve(ln)
}

const resilienceConfig = `
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
` + webListener + `          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: "/"}
                route:
                  cluster: app
                  timeout: 5s
{{- if .Policies}}
                  retry_policy:
                    retry_on: "5xx,connect-failure,reset"
                    num_retries: 2
                    retry_host_predicate: [{name: envoy.retry_host_predicates.previous_hosts, typed_config: {"@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate}}]
                    host_selection_retry_max_attempts: 3
                    retry_back_off: {base_interval: 0.005s}
{{- end}}
          ` + routerFilter + `
  clusters:
  - name: app
    connect_timeout: 0.5s
{{- if .Policies}}
    circuit_breakers: {thresholds: [{retry_budget: {budget_percent: {value: 20}, min_retry_concurrency: 10}}]}
    outlier_detection:
      consecutive_5xx: 5
      interval: 0.2s
      base_ejection_time: 0.5s
      max_ejection_percent: 67
{{- end}}
    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:
{{- range .Hosts}}
        - endpoint: {address: {{addr .}}}
{{- end}}
`

type resilienceData struct {
	Policies bool
	Hosts    []string
}

// runScenario sends a steady load while one upstream starts failing half
// of its requests and another is killed, then both recover. It returns the
// failed and total request counts.
func runScenario(t *testing.T, policies bool) (failed, total int64) {
	hosts := []*flakyServer{newFlakyServer(t), newFlakyServer(t), newFlakyServer(t)}
	p := startProxy(t, resilienceConfig, resilienceData{Policies: policies, Hosts: []string{hosts[0].addr, hosts[1].addr, hosts[2].addr}})
	url := "http://" + p.ListenerAddrs()["web"] + "/"
	var nFailed, nTotal atomic.Int64
	var reasons sync.Map
	defer func() {
		reasons.Range(func(k, _ any) bool { t.Logf("failure kind: %v", k); return true })
	}()
	phase := func(n int) {
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := &http.Client{Timeout: 10 * time.Second}
				defer c.CloseIdleConnections()
				for range n / 4 {
					resp, err := c.Get(url)
					nTotal.Add(1)
					if err != nil {
						nFailed.Add(1)
						continue
					}
					resp.Body.Close()
					if resp.StatusCode != 200 {
						nFailed.Add(1)
						reasons.Store(fmt.Sprint(resp.StatusCode, resp.Header.Get("X-Trellis-Reason")), true)
					}
				}
			}()
		}
		wg.Wait()
	}
	phase(200) // all healthy
	hosts[0].failHalf.Store(true)
	hosts[1].kill()
	phase(800) // one sick, one dead
	hosts[0].failHalf.Store(false)
	hosts[1].revive(t)
	phase(400) // both back
	m := scrape(t, p.AdminAddr())
	t.Logf("retries %v, retry overflows %v", metricValue(m, `trellis_cluster_upstream_retries_total{cluster="app"}`),
		metricValue(m, `trellis_cluster_upstream_retry_overflows_total{cluster="app"}`))
	return nFailed.Load(), nTotal.Load()
}

// TestResilienceScenario is issue 3's scenario: with retries, a retry
// budget and outlier detection the client sees (almost) no failures; the
// same run without them shows the failures.
func TestResilienceScenario(t *testing.T) {
	withFailed, withTotal := runScenario(t, true)
	withoutFailed, withoutTotal := runScenario(t, false)
	t.Logf("with policies: %d of %d failed; without: %d of %d failed", withFailed, withTotal, withoutFailed, withoutTotal)
	// Bound: with two retries on other hosts a request fails only if every
	// attempt lands on a failing host, and the budget allows 20% retries.
	if withFailed > withTotal/100 {
		t.Errorf("with policies %d of %d failed (bound 1%%)", withFailed, withTotal)
	}
	if withoutFailed < withoutTotal/10 {
		t.Errorf("without policies only %d of %d failed: the scenario is not testing anything", withoutFailed, withoutTotal)
	}
}
