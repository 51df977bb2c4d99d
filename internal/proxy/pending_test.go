package proxy_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const pendingConfig = `
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
` + webListener + `          access_log: [{name: f, typed_config: {"@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: "{{.Log}}"}}]
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: "/long"}
                route: {cluster: app, timeout: 30s}
              - match: {prefix: "/"}
                route: {cluster: app, timeout: {{.Timeout}}}
          ` + routerFilter + `
  clusters:
  - name: app
    circuit_breakers: {thresholds: [{{.Thresholds}}]}
    load_assignment: {cluster_name: app, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .Upstream}}}}]}]}
`

type pendingData struct{ Log, Timeout, Thresholds, Upstream string }

// gate is a slow upstream: each request announces itself on arrived (with
// its X-Seq header) and answers only when given a token on release.
type gate struct {
	*upstream
	arrived chan string
	release chan struct{}
}

func newGate(t *testing.T) *gate {
	g := &gate{arrived: make(chan string, 16), release: make(chan struct{}, 16)}
	g.upstream = newUpstream(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		g.arrived <- r.Header.Get("X-Seq")
		select {
		case <-g.release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(g.release) })
	return g
}

// send starts a request with X-Seq seq; its status (0 for a transport
// error) arrives on the returned channel.
func send(ctx context.Context, url, seq string) chan int {
	return sendWith(ctx, http.DefaultClient, url, seq)
}

// sendWith is send with client c.
func sendWith(ctx context.Context, c *http.Client, url, seq string) chan int {
	ch := make(chan int, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Header.Set("X-Seq", seq)
		resp, err := c.Do(req)
		if err != nil {
			ch <- 0
			return
		}
		resp.Body.Close()
		ch <- resp.StatusCode
	}()
	return ch
}

// waitMetric polls the proxy's metrics until series has value want.
func waitMetric(t *testing.T, admin, series string, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := metricValue(scrape(t, admin), series)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v", series, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const (
	pendingActive   = `trellis_cluster_upstream_pending_requests_active{cluster="app"}`
	pendingTotal    = `trellis_cluster_upstream_pending_requests_total{cluster="app"}`
	pendingOverflow = `trellis_cluster_upstream_overflows_total{cluster="app",resource="pending"}`
	connsTotal      = `trellis_cluster_upstream_connections_total{cluster="app"}`
)

// TestPendingQueue: with max_connections 1 and max_pending_requests 2 in
// front of a slow upstream, the second and third requests wait for the one
// connection and are served in order on it; the fourth overflows at once
// with 503 UO.
func TestPendingQueue(t *testing.T) {
	g := newGate(t)
	log := filepath.Join(t.TempDir(), "access.log")
	p := startProxy(t, pendingConfig, pendingData{Log: log, Timeout: "30s",
		Thresholds: "{max_connections: 1, max_pending_requests: 2}", Upstream: g.addr()})
	url := "http://" + p.ListenerAddrs()["web"] + "/"
	admin := p.AdminAddr()

	first := send(context.Background(), url, "1")
	if got := <-g.arrived; got != "1" {
		t.Fatalf("first arrival %q", got)
	}
	waitMetric(t, admin, pendingActive, 0)
	second := send(context.Background(), url, "2")
	waitMetric(t, admin, pendingActive, 1)
	third := send(context.Background(), url, "3")
	waitMetric(t, admin, pendingActive, 2)

	resp, _, body := get(t, http.DefaultClient, url, nil)
	if resp.StatusCode != 503 || resp.Header.Get("X-Trellis-Reason") != "upstream_overflow" {
		t.Fatalf("fourth request: %d %q %q, want 503 upstream_overflow", resp.StatusCode, resp.Header.Get("X-Trellis-Reason"), body)
	}
	if !strings.Contains(body, "max_pending_requests") {
		t.Errorf("overflow body %q does not name max_pending_requests", body)
	}
	waitMetric(t, admin, pendingOverflow, 1)

	var order []string
	for i, ch := range []chan int{first, second, third} {
		g.release <- struct{}{}
		if code := <-ch; code != 200 {
			t.Fatalf("request %d: status %d", i+1, code)
		}
		if i < 2 {
			order = append(order, <-g.arrived)
		}
	}
	if fmt.Sprint(order) != "[2 3]" {
		t.Errorf("queued requests reached the upstream in order %v, want [2 3]", order)
	}
	waitMetric(t, admin, pendingActive, 0)
	// The first request was pending while it connected; the next two while
	// they waited. All three used the one connection.
	waitMetric(t, admin, pendingTotal, 3)
	waitMetric(t, admin, connsTotal, 1)
	waitLog(t, log, `"response_flags":"UO"`)
}

// TestPendingTimeout: a request waiting for a connection is bound by the
// route timeout (504, not blamed on the host), and a client that gives up
// leaves the queue.
func TestPendingTimeout(t *testing.T) {
	g := newGate(t)
	p := startProxy(t, pendingConfig, pendingData{Log: filepath.Join(t.TempDir(), "a.log"), Timeout: "0.2s",
		Thresholds: "{max_connections: 1, max_pending_requests: 5}", Upstream: g.addr()})
	url := "http://" + p.ListenerAddrs()["web"] + "/"
	admin := p.AdminAddr()

	// The first request (route timeout 30s) holds the only connection.
	first := send(context.Background(), "http://"+p.ListenerAddrs()["web"]+"/long", "1")
	<-g.arrived
	resp, _, body := get(t, http.DefaultClient, url, nil)
	if resp.StatusCode != 504 || resp.Header.Get("X-Trellis-Reason") != "upstream_timeout" {
		t.Fatalf("pending request: %d %q %q, want 504 upstream_timeout", resp.StatusCode, resp.Header.Get("X-Trellis-Reason"), body)
	}
	waitMetric(t, admin, pendingActive, 0)
	g.release <- struct{}{}
	if code := <-first; code != 200 {
		t.Fatalf("first request: %d, want 200", code)
	}
	if n := g.calls.Load(); n != 1 {
		t.Errorf("upstream got %d requests, want 1 (the timed-out one never left the queue)", n)
	}
	if v := metricValue(scrape(t, admin), pendingOverflow); v != 0 {
		t.Errorf("pending overflows = %v, want 0", v)
	}
}

// TestPendingCancel: a client that gives up while its request waits takes
// it out of the queue.
func TestPendingCancel(t *testing.T) {
	g := newGate(t)
	p := startProxy(t, pendingConfig, pendingData{Log: filepath.Join(t.TempDir(), "a.log"), Timeout: "30s",
		Thresholds: "{max_connections: 1, max_pending_requests: 1}", Upstream: g.addr()})
	url := "http://" + p.ListenerAddrs()["web"] + "/"
	admin := p.AdminAddr()

	first := send(context.Background(), url, "1")
	<-g.arrived
	// Over HTTP/2 a cancelled request resets its stream, which the proxy
	// sees at once (an HTTP/1.1 client would have to close the connection).
	var ps http.Protocols
	ps.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Transport: &http.Transport{Protocols: &ps}}
	defer h2c.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	gone := sendWith(ctx, h2c, url, "2")
	waitMetric(t, admin, pendingActive, 1)
	cancel()
	if code := <-gone; code != 0 {
		t.Fatalf("cancelled request got %d", code)
	}
	waitMetric(t, admin, pendingActive, 0)
	// Its place is free: another request can wait and is served.
	third := send(context.Background(), url, "3")
	waitMetric(t, admin, pendingActive, 1)
	g.release <- struct{}{}
	g.release <- struct{}{}
	for _, ch := range []chan int{first, third} {
		if code := <-ch; code != 200 {
			t.Fatalf("status %d", code)
		}
	}
	if got := <-g.arrived; got != "3" {
		t.Errorf("upstream saw %q, want the third request (the cancelled one never arrives)", got)
	}
}

// TestPendingZero: max_pending_requests 0 refuses any request that finds
// no ready connection, as in Envoy, but requests reuse an idle one.
func TestPendingZero(t *testing.T) {
	u := newUpstream(t, "u", answer(200))
	p := startProxy(t, pendingConfig, pendingData{Log: filepath.Join(t.TempDir(), "a.log"), Timeout: "5s",
		Thresholds: "{max_pending_requests: 0}", Upstream: u.addr()})
	resp, _, _ := get(t, http.DefaultClient, "http://"+p.ListenerAddrs()["web"]+"/", nil)
	if resp.StatusCode != 503 || u.calls.Load() != 0 {
		t.Fatalf("status %d after %d upstream calls, want 503 and none", resp.StatusCode, u.calls.Load())
	}
}

// waitLog polls an access log file until it contains s.
func waitLog(t *testing.T, path, s string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(b), s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("access log never contained %q:\n%s", s, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
