package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"
)

// The resilience scenario of issue 3, with real processes: three
// `trellis echo` instances behind `trellis proxy`, a steady bounded load;
// one instance starts failing half of its requests (instance fault API)
// and another is killed with SIGKILL; then the first recovers and the
// second is restarted on the same port.
const (
	loadRate       = 50 // requests per second
	phaseHealthy   = 3 * time.Second
	phaseSick      = 5 * time.Second
	phaseRecovered = 5 * time.Second

	// The outlier detection settings of the bootstrap below.
	odInterval     = 500 * time.Millisecond
	odMaxEjection  = 3 * time.Second
	ejectMargin    = 2 * time.Second // a loaded 2-core machine: scheduling, one extra sweep
	failedBoundPct = 1               // with policies, at most 1% of requests may fail
	withoutFactor  = 10              // without policies, at least 10× more failures
)

const resilienceBootstrap = `
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources:
  listeners:
  - name: edge
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: edge
          route_config:
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
                    retry_on: "5xx,reset,connect-failure"
                    num_retries: 2
                    retry_host_predicate: [{name: envoy.retry_host_predicates.previous_hosts, typed_config: {"@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate}}]
                    host_selection_retry_max_attempts: 3
                    retry_back_off: {base_interval: 0.005s, max_interval: 0.05s}
{{- end}}
          http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
  clusters:
  - name: app
    type: STATIC
    connect_timeout: 0.25s
{{- if .Policies}}
    circuit_breakers: {thresholds: [{retry_budget: {budget_percent: {value: 20}, min_retry_concurrency: 10}}]}
    outlier_detection:
      interval: 0.5s
      base_ejection_time: 2s
      max_ejection_time: 3s
      max_ejection_percent: 67
      consecutive_5xx: 5
      failure_percentage_threshold: 30
      enforcing_failure_percentage: 100
      failure_percentage_minimum_hosts: 2
      failure_percentage_request_volume: 5
{{- end}}
    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:
{{- range .Ports}}
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {{.}}}}}
{{- end}}
`

// scenarioResult are the figures of one run.
type scenarioResult struct {
	total, failed        int
	failedByPhase        [3]int
	totalByPhase         [3]int
	reasons              map[string]int
	ejectedAfter         time.Duration // A's ejection after it started failing; -1: never
	returnedAfter        time.Duration // A and B back after recovery; -1: never
	servedAfterRecovery  [2]int        // requests A and B served in the recovered phase
	retries, retryOverfl string
}

func TestResilienceScenario(t *testing.T) {
	with := runResilience(t, true)
	without := runResilience(t, false)
	for _, r := range []struct {
		name string
		res  scenarioResult
	}{{"with policies", with}, {"without policies", without}} {
		t.Logf("%s: %d of %d requests failed (%.2f%%); by phase healthy/sick/recovered: %d/%d, %d/%d, %d/%d; failures %v",
			r.name, r.res.failed, r.res.total, 100*float64(r.res.failed)/float64(r.res.total),
			r.res.failedByPhase[0], r.res.totalByPhase[0], r.res.failedByPhase[1], r.res.totalByPhase[1],
			r.res.failedByPhase[2], r.res.totalByPhase[2], r.res.reasons)
	}
	t.Logf("with policies: A ejected %v after it started failing (bound %v), A and B back %v after recovery, then served %d and %d of %d requests; retries %s, retry overflows %s",
		with.ejectedAfter, odInterval+ejectMargin, with.returnedAfter, with.servedAfterRecovery[0], with.servedAfterRecovery[1],
		with.totalByPhase[2], with.retries, with.retryOverfl)

	// Bound: before the sick hosts are ejected, a request fails only if all
	// three attempts (on three different hosts, previous_hosts) fail, and
	// one host is always healthy; the budget's floor of 10 concurrent
	// retries is far above this load's concurrency. 1% leaves room for the
	// odd timeout on a loaded machine.
	if with.failed*100 > with.total*failedBoundPct {
		t.Errorf("with policies %d of %d requests failed, above the %d%% bound", with.failed, with.total, failedBoundPct)
	}
	if without.failed < withoutFactor*max(with.failed, 1) {
		t.Errorf("without policies %d requests failed, not %d× the %d with them: the scenario does not show the policies' effect",
			without.failed, withoutFactor, with.failed)
	}
	if with.ejectedAfter < 0 || with.ejectedAfter > odInterval+ejectMargin {
		t.Errorf("A was ejected %v after it started failing, want within %v (interval %v + margin %v)",
			with.ejectedAfter, odInterval+ejectMargin, odInterval, ejectMargin)
	}
	if with.returnedAfter < 0 {
		t.Errorf("A and B did not both return to service within %v of recovering", odMaxEjection+odInterval+ejectMargin)
	}
	// Back means serving: each got a share of the recovered phase's load
	// (a third when balanced; a tenth allows for the time spent ejected).
	for i, n := range with.servedAfterRecovery {
		if n < with.totalByPhase[2]/10 {
			t.Errorf("%s served %d of the %d requests after recovery: not back in service", [2]string{"A", "B"}[i], n, with.totalByPhase[2])
		}
	}
}

// runResilience runs the scenario once with or without the policies.
func runResilience(t *testing.T, policies bool) scenarioResult {
	var echos [3]*proc
	var ports [3]string
	names := [3]string{"A", "B", "C"}
	for i := range echos {
		echos[i] = start(t, "echo", "--listen", "127.0.0.1:0", "--name", names[i])
		ports[i] = echos[i].waitLine(`listening on http://127\.0\.0\.1:(\d+)`)[1]
	}
	cfg := filepath.Join(t.TempDir(), "bootstrap.yaml")
	var b strings.Builder
	if err := template.Must(template.New("").Parse(resilienceBootstrap)).Execute(&b, struct {
		Policies bool
		Ports    []string
	}{policies, ports[:]}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, "proxy", "-c", cfg)
	admin := "http://" + p.waitLine(`admin listening on (\S+)`)[1]
	edge := "http://" + p.waitLine(`listener edge listening on (\S+)`)[1] + "/"

	res := scenarioResult{reasons: map[string]int{}, ejectedAfter: -1, returnedAfter: -1}
	var mu sync.Mutex
	var phase int // guarded by mu
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	send := func() {
		mu.Lock()
		ph := phase
		mu.Unlock()
		reason := ""
		resp, err := client.Get(edge)
		if err != nil {
			reason = "client error"
		} else {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				reason = fmt.Sprintf("%d %s", resp.StatusCode, resp.Header.Get("X-Trellis-Reason"))
			}
		}
		mu.Lock()
		defer mu.Unlock()
		res.total++
		res.totalByPhase[ph]++
		if reason != "" {
			res.failed++
			res.failedByPhase[ph]++
			res.reasons[reason]++
		}
	}

	// The load: one request every 1/loadRate, each in its own goroutine,
	// a bounded number in all.
	var inflight sync.WaitGroup
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		tick := time.NewTicker(time.Second / loadRate)
		defer tick.Stop()
		n := int((phaseHealthy + phaseSick + phaseRecovered) / (time.Second / loadRate))
		for range n {
			<-tick.C
			inflight.Go(send)
		}
		inflight.Wait()
	}()
	setPhase := func(n int) { mu.Lock(); phase = n; mu.Unlock() }

	waitFor(t, loadDone, phaseHealthy)
	// Phase 2: A fails half of its requests, B dies.
	post(t, "http://127.0.0.1:"+ports[0]+"/_echo/fail?ratio=0.5&status=503")
	if err := echos[1].cmd.Process.Kill(); err != nil { // SIGKILL, by PID
		t.Fatal(err)
	}
	<-echos[1].done
	sick := time.Now()
	setPhase(1)
	hostA, hostB := "127.0.0.1:"+ports[0], "127.0.0.1:"+ports[1]
	for time.Since(sick) < phaseSick {
		if policies && res.ejectedAfter < 0 && ejected(t, admin, hostA) {
			res.ejectedAfter = time.Since(sick)
		}
		waitFor(t, loadDone, 50*time.Millisecond)
	}
	// Phase 3: A recovers, B is restarted on its port.
	post(t, "http://"+hostA+"/_echo/recover")
	echos[1] = start(t, "echo", "--listen", hostB, "--name", "B")
	echos[1].waitLine(`listening on`)
	recovered := time.Now()
	setPhase(2)
	aBefore := echoRequests(t, hostA)
	if policies {
		deadline := recovered.Add(odMaxEjection + odInterval + ejectMargin)
		for time.Now().Before(deadline) {
			if !ejected(t, admin, hostA) && !ejected(t, admin, hostB) {
				res.returnedAfter = time.Since(recovered)
				break
			}
			waitFor(t, loadDone, 50*time.Millisecond)
		}
	}
	<-loadDone
	res.servedAfterRecovery = [2]int{echoRequests(t, hostA) - aBefore, echoRequests(t, hostB)}
	m := get(t, admin+"/stats/prometheus")
	res.retries = metricLine(m, `trellis_cluster_upstream_retries_total{cluster="app"}`)
	res.retryOverfl = metricLine(m, `trellis_cluster_upstream_retry_overflows_total{cluster="app"}`)
	return res
}

// waitFor waits for d, or less if done closes first (ticker pacing, not
// a wait for a condition).
func waitFor(t *testing.T, done <-chan struct{}, d time.Duration) {
	t.Helper()
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-done:
	}
}

// ejected reports whether /clusters shows host as failed_outlier_check.
func ejected(t *testing.T, admin, host string) bool {
	t.Helper()
	return strings.Contains(hostFlags(get(t, admin+"/clusters"), host), "/failed_outlier_check")
}

func hostFlags(clusters, host string) string {
	prefix := "app::" + host + "::health_flags::"
	for l := range strings.Lines(clusters) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), prefix); ok {
			return v
		}
	}
	return ""
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func post(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Post(url, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST %s: %d", url, resp.StatusCode)
	}
}

// echoRequests returns the requests an echo instance has served.
func echoRequests(t *testing.T, host string) int {
	t.Helper()
	var st struct {
		Requests int `json:"requests"`
	}
	if err := json.Unmarshal([]byte(get(t, "http://"+host+"/echo/stats")), &st); err != nil {
		t.Fatal(err)
	}
	return st.Requests
}

func metricLine(metrics, series string) string {
	for l := range strings.Lines(metrics) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), series+" "); ok {
			return v
		}
	}
	return "0"
}
