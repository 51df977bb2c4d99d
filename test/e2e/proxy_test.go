package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const bootstrap = `
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources:
  listeners:
  - name: edge
    address: {socket_address: {address: 127.0.0.1, port_value: %s}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: edge
          route_config:
            response_headers_to_add: [{header: {key: x-generation, value: "%s"}}]
            virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: echo}}]}]
          http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
  clusters:
  - name: echo
    load_assignment: {cluster_name: echo, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %s}}}}]}]}
`

func startEcho(t *testing.T) (addr, port string) {
	e := start(t, "echo", "--listen", "127.0.0.1:0", "--name", "e2e")
	m := e.waitLine(`listening on http://(127\.0\.0\.1:(\d+))`)
	return m[1], m[2]
}

func httpGet(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestProxyLifecycle: start, serve, reload on SIGHUP (good and bad files),
// then drain on SIGTERM while a request is in flight and exit 0.
func TestProxyLifecycle(t *testing.T) {
	_, echoPort := startEcho(t)
	cfg := filepath.Join(t.TempDir(), "bootstrap.yaml")
	write := func(listenPort, gen string) {
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(bootstrap, listenPort, gen, echoPort)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("0", "one")
	p := start(t, "proxy", "-c", cfg, "--drain-timeout", "10s")
	admin := p.waitLine(`admin listening on (\S+)`)[1]
	edge := p.waitLine(`listener edge listening on (127\.0\.0\.1:(\d+))`)
	base := "http://" + edge[1]

	resp, body := httpGet(t, base+"/hello")
	if resp.StatusCode != 200 || resp.Header.Get("X-Generation") != "one" || !strings.Contains(body, `"name":"e2e"`) {
		t.Fatalf("first request: %d %q %q", resp.StatusCode, resp.Header.Get("X-Generation"), body)
	}

	// A good reload takes effect without restarting.
	write(edge[2], "two")
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, _ := httpGet(t, base+"/")
		if resp.Header.Get("X-Generation") == "two" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("reload never took effect")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A bad reload is refused, named, and changes nothing.
	if err := os.WriteFile(cfg, []byte("static_resources:\n  clusters:\n  - name: echo\n    upstream_connection_options: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitStderr("static_resources.clusters[0].upstream_connection_options: not supported")
	if resp, _ := httpGet(t, base+"/"); resp.StatusCode != 200 || resp.Header.Get("X-Generation") != "two" {
		t.Fatalf("after a bad reload: %d %q", resp.StatusCode, resp.Header.Get("X-Generation"))
	}

	// Drain: a slow request in flight completes; /ready says DRAINING; exit 0.
	var wg sync.WaitGroup
	wg.Add(1)
	var slowStatus int
	var slowErr error
	go func() {
		defer wg.Done()
		r, err := http.Get(base + "/?delay=1500ms")
		if err != nil {
			slowErr = err
			return
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		slowStatus = r.StatusCode
	}()
	// Wait until the request is in flight at the upstream.
	deadline = time.Now().Add(10 * time.Second)
	for {
		_, m := httpGet(t, "http://"+admin+"/stats/prometheus")
		if strings.Contains(m, `trellis_http_downstream_requests_active{stat_prefix="edge"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("slow request never became active")
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	sawDraining := false
	for !p.exited() {
		if r, err := http.Get("http://" + admin + "/ready"); err == nil {
			b, _ := io.ReadAll(r.Body)
			r.Body.Close()
			if r.StatusCode == 503 && strings.Contains(string(b), "DRAINING") {
				sawDraining = true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	if slowErr != nil || slowStatus != 200 {
		t.Fatalf("in-flight request during drain: %d %v", slowStatus, slowErr)
	}
	if p.err != nil {
		t.Fatalf("exit: %v\n%s", p.err, p.stderr())
	}
	if !sawDraining {
		t.Error("/ready never reported DRAINING during the drain")
	}
}

func TestProxyValidate(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte(fmt.Sprintf(bootstrap, "0", "x", "1")), 0o644)
	os.WriteFile(bad, []byte(strings.Replace(fmt.Sprintf(bootstrap, "0", "x", "1"), "cluster: echo}", "cluster: nope}", 1)), 0o644)
	if code, out, errOut := run(t, "proxy", "--validate", "-c", good); code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("good: %d %q %q", code, out, errOut)
	}
	code, _, errOut := run(t, "proxy", "--validate", "-c", bad)
	if code != 1 || !strings.Contains(errOut, `names cluster "nope", which is not defined`) {
		t.Fatalf("bad: %d %q", code, errOut)
	}
	code, _, errOut = run(t, "proxy")
	if code == 0 || !strings.Contains(errOut, "--config-path") {
		t.Fatalf("no config: %d %q", code, errOut)
	}
}
