package proxy_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// upstream is a real HTTP server that misbehaves as told.
type upstream struct {
	srv   *httptest.Server
	name  string
	calls atomic.Int64
}

func newUpstream(t *testing.T, name string, h func(w http.ResponseWriter, r *http.Request)) *upstream {
	u := &upstream{name: name}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.calls.Add(1)
		w.Header().Set("X-Upstream", name)
		h(w, r)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) addr() string { return u.srv.Listener.Addr().String() }

func answer(code int) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// echoBody answers with the request body, read in full first (net/http's
// HTTP/1 server stops reading a body once the response starts).
func echoBody(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Write(b)
}

const retryConfig = `
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
` + webListener + `          access_log: [{name: f, typed_config: {"@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: "{{.Log}}"}}]
          route_config:
            virtual_hosts:
            - name: plain
              domains: ["plain.local"]
              routes: [{match: {prefix: "/"}, route: {cluster: app}}]
            - name: all
              domains: ["*"]
              retry_policy: {retry_on: "5xx", num_retries: 2}
              routes:
              - match: {prefix: "/vhost-policy"}
                route: {cluster: app}
              - match: {prefix: "/small-buffer"}
                route:
                  cluster: app
                  retry_policy:
                    retry_on: "5xx"
                    num_retries: 2
                    retry_host_predicate: [{name: envoy.retry_host_predicates.previous_hosts, typed_config: {"@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate}}]
                    host_selection_retry_max_attempts: 5
                    retry_back_off: {base_interval: 0.001s}
              - match: {prefix: "/"}
                route:
                  cluster: app
                  retry_policy:
                    retry_on: "{{.RetryOn}}"
                    num_retries: {{.Num}}
                    retriable_status_codes: [429]
                    retry_host_predicate: [{name: envoy.retry_host_predicates.previous_hosts, typed_config: {"@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate}}]
                    host_selection_retry_max_attempts: 5
                    retry_back_off: {base_interval: 0.001s, max_interval: 0.002s}
          ` + routerFilter + `
  clusters:
  - name: app
    connect_timeout: 1s
    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:
{{- range .Hosts}}
        - endpoint: {address: {{addr .}}}
{{- end}}
`

type retryData struct {
	Log, RetryOn string
	Num          int
	Hosts        []string
}

func TestRetries(t *testing.T) {
	bad := newUpstream(t, "bad", answer(503))
	good := newUpstream(t, "good", echoBody)
	dead := startEcho(t, "dead")
	deadAddr := dead.Addr()
	dead.Shutdown(t.Context())
	limited := newUpstream(t, "limited", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	logPath := filepath.Join(t.TempDir(), "access.log")
	post := func(t *testing.T, url, body string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Post(url, "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	t.Run("5xx from one host is retried on another with the body replayed", func(t *testing.T) {
		p := startProxy(t, retryConfig, retryData{Log: logPath, RetryOn: "5xx", Num: 2, Hosts: []string{bad.addr(), good.addr()}})
		base := "http://" + p.ListenerAddrs()["web"]
		for i := range 40 {
			body := fmt.Sprintf("payload-%d-%s", i, strings.Repeat("x", 1000))
			resp, got := post(t, base+"/", body)
			if resp.StatusCode != 200 || got != body {
				t.Fatalf("request %d: %d, got %d bytes %.40q, want %d bytes", i, resp.StatusCode, len(got), got, len(body))
			}
		}
		if bad.calls.Load() == 0 {
			t.Fatal("the failing host was never tried; the test proves nothing")
		}
		m := scrape(t, p.AdminAddr())
		if v := metricValue(m, `trellis_cluster_upstream_retries_total{cluster="app"}`); v < float64(bad.calls.Load()) {
			t.Errorf("retries metric %v < failures %d", v, bad.calls.Load())
		}
	})
	t.Run("without a policy the failure reaches the client", func(t *testing.T) {
		p := startProxy(t, retryConfig, retryData{Log: logPath, RetryOn: "5xx", Num: 2, Hosts: []string{bad.addr(), good.addr()}})
		base := "http://" + p.ListenerAddrs()["web"]
		failed := 0
		for range 40 {
			req, _ := http.NewRequest("POST", base+"/", strings.NewReader("x"))
			req.Host = "plain.local"
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == 503 {
				failed++
			}
		}
		if failed < 5 {
			t.Fatalf("only %d of 40 failed with a bad host in rotation and no retries", failed)
		}
	})
	t.Run("retries exhausted: URX and the last answer", func(t *testing.T) {
		p := startProxy(t, retryConfig, retryData{Log: logPath, RetryOn: "5xx", Num: 1, Hosts: []string{bad.addr()}})
		resp, _ := post(t, "http://"+p.ListenerAddrs()["web"]+"/", "x")
		if resp.StatusCode != 503 || resp.Header.Get("X-Upstream") != "bad" {
			t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("X-Upstream"))
		}
		log, _ := os.ReadFile(logPath)
		if !bytes.Contains(log, []byte(`"response_flags":"URX"`)) || !bytes.Contains(log, []byte(`"retries":1`)) {
			t.Fatalf("access log lacks URX and one retry:\n%s", log)
		}
	})
	t.Run("connect failure", func(t *testing.T) {
		p := startProxy(t, retryConfig, retryData{Log: logPath, RetryOn: "connect-failure", Num: 3, Hosts: []string{deadAddr, good.addr()}})
		for range 20 {
			if resp, _ := post(t, "http://"+p.ListenerAddrs()["web"]+"/", "x"); resp.StatusCode != 200 {
				t.Fatalf("got %d", resp.StatusCode)
			}
		}
	})
	t.Run("connect-failure does not retry a 503 answer", func(t *testing.T) {
		p := startProxy(t, retryConfig, retryData{Log: logPath, RetryOn: "connect-failure", Num: 3, Hosts: []string{bad.addr()}})
		before := bad.calls.Load()
		if resp, _ := post(t, "http://"+p.ListenerAddrs()["web"]+"/", "x"); resp.StatusCode != 503 {
			t.Fatalf("got %d", resp.StatusCode)
		}
		if n := bad.calls.Load() - before; n != 1 {
			t.Fatalf("upstream called %d times", n)
		}
	})
	t.Run("retriable status codes with Retry-After", func(t *testing.T) {
		p := startProxy(t, retryConfig, retryData{Log: logPath, RetryOn: "retriable-status-codes", Num: 2, Hosts: []string{limited.addr(), good.addr()}})
		for range 20 {
			if resp, _ := post(t, "http://"+p.ListenerAddrs()["web"]+"/", "x"); resp.StatusCode != 200 {
				t.Fatalf("got %d", resp.StatusCode)
			}
		}
	})
	t.Run("virtual host policy applies to routes without their own", func(t *testing.T) {
		p := startProxy(t, retryConfig, retryData{Log: logPath, RetryOn: "5xx", Num: 2, Hosts: []string{bad.addr(), good.addr()}})
		ok := 0
		for range 40 {
			if resp, _ := post(t, "http://"+p.ListenerAddrs()["web"]+"/vhost-policy", "x"); resp.StatusCode == 200 {
				ok++
			}
		}
		// Without previous_hosts a retry may land on the bad host again;
		// two retries over two hosts still succeed most of the time.
		if ok < 30 {
			t.Fatalf("%d of 40 succeeded", ok)
		}
	})
}

// TestRetryBodyTooLarge: a body over the retry buffer is streamed and not
// retried.
func TestRetryBodyTooLarge(t *testing.T) {
	bad := newUpstream(t, "bad", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(503)
	})
	logPath := filepath.Join(t.TempDir(), "access.log")
	p := startProxy(t, retryConfig, retryData{Log: logPath, RetryOn: "5xx", Num: 2, Hosts: []string{bad.addr()}})
	big := bytes.Repeat([]byte("z"), 3<<20)
	resp, err := http.Post("http://"+p.ListenerAddrs()["web"]+"/small-buffer", "text/plain", bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || bad.calls.Load() != 1 {
		t.Fatalf("%d after %d calls", resp.StatusCode, bad.calls.Load())
	}
	log, _ := os.ReadFile(logPath)
	if !bytes.Contains(log, []byte(`"reason":"retry_body_too_large"`)) {
		t.Fatalf("access log does not say why there was no retry:\n%s", log)
	}
}
