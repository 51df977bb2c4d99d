package proxy_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

const mirrorConfig = `
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
` + webListener + `          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: "/half"}
                route: {cluster: primary, request_mirror_policies: [{cluster: shadow, runtime_fraction: {default_value: {numerator: 50, denominator: HUNDRED}}}]}
              - match: {prefix: "/"}
                route: {cluster: primary, request_mirror_policies: [{cluster: shadow}]}
          ` + routerFilter + `
  clusters:
  - name: primary
    load_assignment: {cluster_name: primary, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .Primary}}}}]}]}
  - name: shadow
    load_assignment: {cluster_name: shadow, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .Shadow}}}}]}]}
`

// TestMirroring: every request reaches the shadow cluster with its body and
// a "-shadow" authority, and a shadow that never answers does not hold up
// a single primary request.
func TestMirroring(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	seen := map[string]string{} // body → host
	shadow := newUpstream(t, "shadow", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen[string(b)] = r.Host
		mu.Unlock()
		<-release // the shadow hangs until the primaries are done
	})
	defer close(release)
	primary := newUpstream(t, "primary", echoBody)
	p := startProxy(t, mirrorConfig, map[string]string{"Primary": primary.addr(), "Shadow": shadow.addr()})
	base := "http://" + p.ListenerAddrs()["web"]
	const n = 20
	for i := range n {
		body := fmt.Sprintf("request-%d", i)
		req, _ := http.NewRequest("POST", base+"/x", strings.NewReader(body))
		req.Host = "app.local:8080"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(got) != body {
			t.Fatalf("primary %d: %d %q", i, resp.StatusCode, got)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		k := len(seen)
		mu.Unlock()
		if k == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("shadow saw %d of %d requests", k, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range n {
		if h := seen[fmt.Sprintf("request-%d", i)]; h != "app.local-shadow:8080" {
			t.Errorf("request-%d reached the shadow as %q", i, h)
		}
	}
}

func TestMirrorFraction(t *testing.T) {
	shadow := newUpstream(t, "shadow", answer(200))
	primary := newUpstream(t, "primary", answer(200))
	p := startProxy(t, mirrorConfig, map[string]string{"Primary": primary.addr(), "Shadow": shadow.addr()})
	for range 400 {
		resp, err := http.Get("http://" + p.ListenerAddrs()["web"] + "/half")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// Mirrors are fire and forget: wait until the shadow has been quiet
	// for 50 polls in a row.
	deadline := time.Now().Add(20 * time.Second)
	for last, quiet := int64(-1), 0; quiet < 50 && time.Now().Before(deadline); {
		if c := shadow.calls.Load(); c == last {
			quiet++
		} else {
			last, quiet = c, 0
		}
		time.Sleep(10 * time.Millisecond)
	}
	// 50% of 400: the standard deviation is 10.
	if c := shadow.calls.Load(); c < 140 || c > 260 {
		t.Fatalf("mirrored %d of 400 at 50%%", c)
	}
}
