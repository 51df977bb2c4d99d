package control_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/internal/cli"
	"github.com/trellis-mesh/trellis/internal/control"
	"github.com/trellis-mesh/trellis/internal/control/client"
	"github.com/trellis-mesh/trellis/internal/control/telemetry"
	"github.com/trellis-mesh/trellis/internal/echo"
	"github.com/trellis-mesh/trellis/internal/proxy"
	"github.com/trellis-mesh/trellis/internal/store/bolt"
	"github.com/trellis-mesh/trellis/internal/xds/ads"
)

const gmToken = "golden-metrics-token"

// gmMesh is a real mesh in this process: a control plane over bbolt, echo
// apps, and proxies configured over xDS that push their metrics to it.
type gmMesh struct {
	t        *testing.T
	c        *control.Control
	api, xds string
}

func startGMControl(t *testing.T) *gmMesh {
	t.Helper()
	s, err := bolt.Open(filepath.Join(t.TempDir(), "trellis.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c, err := control.New(control.Options{Store: s, APIAddr: "127.0.0.1:0", XDSAddr: "127.0.0.1:0", Token: gmToken,
		Telemetry: telemetry.Options{Resolution: time.Second, Retention: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("control plane: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("control plane did not stop")
		}
	})
	<-c.Ready()
	api, xds := c.Addrs()
	return &gmMesh{t: t, c: c, api: "http://" + api, xds: xds}
}

// trellis runs the CLI against the mesh's control plane.
func (m *gmMesh) trellis(args ...string) string {
	m.t.Helper()
	var out, errOut bytes.Buffer
	if code := cli.Main(context.Background(), append(args, "--server", m.api, "--token", gmToken), &out, &errOut); code != 0 {
		m.t.Fatalf("trellis %s: exit %d: %s", strings.Join(args, " "), code, errOut.String())
	}
	return out.String()
}

func (m *gmMesh) apply(docs string) {
	m.t.Helper()
	cl, err := client.New(client.Config{Server: m.api, Token: gmToken})
	if err != nil {
		m.t.Fatal(err)
	}
	if _, err := cl.Apply(context.Background(), strings.NewReader(docs)); err != nil {
		m.t.Fatal(err)
	}
}

// proxy starts an in-process proxy for a Dataplane document, fed over
// xDS, pushing its metrics every 200ms.
func (m *gmMesh) proxy(doc string) *proxy.Proxy {
	m.t.Helper()
	node, err := ads.ParseDataplane([]byte(doc))
	if err != nil {
		m.t.Fatal(err)
	}
	p := proxy.New(proxy.Options{Logger: slog.New(slog.DiscardHandler), DrainTimeout: time.Second})
	c, err := ads.New(ads.Options{Address: m.xds, Node: node, Proxy: p, MetricsInterval: 200 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		m.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = c.Run(ctx) })
	m.t.Cleanup(func() {
		cancel()
		wg.Wait()
		p.Shutdown(context.Background())
	})
	return p
}

func startEcho(t *testing.T, name string) int {
	t.Helper()
	s, err := echo.New(echo.Options{Name: name, HTTPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	_, port, _ := net.SplitHostPort(s.Addr())
	n, _ := strconv.Atoi(port)
	return n
}

// freePorts returns n loopback ports that were free a moment ago (the
// Dataplanes name their proxies' ports up front).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var out []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	return out
}

func pollUntil(t *testing.T, what string, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, last := f()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for %s; last: %s", what, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func hasHosts(p *proxy.Proxy, clusters ...string) bool {
	n := 0
	for _, c := range p.Clusters() {
		for _, want := range clusters {
			if c.Name == want && len(c.Hosts()) > 0 {
				n++
			}
		}
	}
	return n == len(clusters)
}

var pushesRE = regexp.MustCompile(`(?m)^trellis_mesh_telemetry_pushes_total (\d+)`)

func (m *gmMesh) pushes() int {
	m.t.Helper()
	resp, err := http.Get(m.api + "/metrics")
	if err != nil {
		m.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	mm := pushesRE.FindSubmatch(body)
	if mm == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(mm[1]))
	return n
}

func (m *gmMesh) stat(args ...string) map[string]telemetry.Row {
	m.t.Helper()
	var res telemetry.Result
	if err := json.Unmarshal([]byte(m.trellis(append([]string{"stat"}, append(args, "-o", "json", "--window", "30s")...)...)), &res); err != nil {
		m.t.Fatal(err)
	}
	rows := map[string]telemetry.Row{}
	for _, r := range res.Rows {
		rows[r.Name] = r
	}
	return rows
}

// TestGoldenMetricsMesh drives a real mesh — web calling api through a
// 80/20 canary to api-v1 and api-v2, every fourth request a 500, every
// request delayed 50 ms by the app — and reads the golden metrics back with
// trellis stat and trellis edges.
func TestGoldenMetricsMesh(t *testing.T) {
	m := startGMControl(t)
	ports := freePorts(t, 3) // web's outbound, api-1's and api-2's inbound
	app1, app2 := startEcho(t, "api-1"), startEcho(t, "api-2")
	m.apply(`kind: Service
apiVersion: trellis.dev/v1alpha1
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, protocol: http}]}
---
kind: Service
apiVersion: trellis.dev/v1alpha1
metadata: {name: api}
spec: {selector: {app: api}, ports: [{port: 80, protocol: http}]}
---
kind: Service
apiVersion: trellis.dev/v1alpha1
metadata: {name: api-v1}
spec: {selector: {app: api, version: v1}, ports: [{port: 80, protocol: http}]}
---
kind: Service
apiVersion: trellis.dev/v1alpha1
metadata: {name: api-v2}
spec: {selector: {app: api, version: v2}, ports: [{port: 80, protocol: http}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api-canary}
spec:
  parentRefs: [{group: "", kind: Service, name: api, port: 80}]
  rules:
  - backendRefs: [{name: api-v1, port: 80, weight: 80}, {name: api-v2, port: 80, weight: 20}]
`)
	dp := func(name, labels string, inbound string) string {
		return fmt.Sprintf("apiVersion: trellis.dev/v1alpha1\nkind: Dataplane\nmetadata: {name: %s, labels: {%s}}\nspec:\n  address: 127.0.0.1\n%s", name, labels, inbound)
	}
	web := m.proxy(dp("web-1", "app: web", fmt.Sprintf("  outbound: [{service: api, localPort: %d}]\n", ports[0])))
	api1 := m.proxy(dp("api-1", "app: api, version: v1", fmt.Sprintf("  inbound: [{port: %d, servicePort: 80, appPort: %d}]\n", ports[1], app1)))
	api2 := m.proxy(dp("api-2", "app: api, version: v2", fmt.Sprintf("  inbound: [{port: %d, servicePort: 80, appPort: %d}]\n", ports[2], app2)))
	pollUntil(t, "the mesh's configuration", func() (bool, string) {
		ok := hasHosts(web, "default/api-v1:80", "default/api-v2:80") && len(web.ListenerAddrs()) > 0 &&
			len(api1.ListenerAddrs()) > 0 && len(api2.ListenerAddrs()) > 0
		return ok, fmt.Sprint(web.ListenerAddrs(), api1.ListenerAddrs(), api2.ListenerAddrs())
	})
	// The first push of a proxy that predates the control plane (these
	// share the test's process) is a baseline: let every proxy push twice.
	base := m.pushes()
	pollUntil(t, "pushes", func() (bool, string) { n := m.pushes(); return n >= base+6, strconv.Itoa(n) })

	const total, failing = 60, 15
	for i := range total {
		url := fmt.Sprintf("http://127.0.0.1:%d/?delay=50ms", ports[0])
		want := 200
		if i%4 == 0 {
			url, want = url+"&status=500", 500 // not retried by default
		}
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("request %d: status %d, want %d", i, resp.StatusCode, want)
		}
	}

	// Server side: api counts every request, api-v1 and api-v2 their share.
	var svc map[string]telemetry.Row
	pollUntil(t, "trellis stat to count every request", func() (bool, string) {
		svc = m.stat()
		return svc["default/api"].Requests == total, fmt.Sprintf("%+v", svc["default/api"])
	})
	api, sr := svc["default/api"], float64(total-failing)/total
	if api.Success == nil || *api.Success != sr {
		t.Errorf("api success %v, want %v", api.Success, sr)
	}
	if api.RPS <= 0 {
		t.Errorf("api rps %v, want > 0", api.RPS)
	}
	// 50 ms plus the mesh's overhead falls in the (50 ms, 100 ms] bucket.
	for name, p := range map[string]*float64{"p50": api.P50, "p95": api.P95, "p99": api.P99} {
		if p == nil || *p <= 50 || *p > 100 {
			t.Errorf("api %s %v ms, want within the (50, 100] ms bucket", name, p)
		}
	}
	v1, v2 := svc["default/api-v1"], svc["default/api-v2"]
	if v1.Requests+v2.Requests != total || v2.Requests == 0 || v1.Requests <= v2.Requests {
		t.Errorf("canary: api-v1 %d, api-v2 %d requests; want all %d split about 80/20", v1.Requests, v2.Requests, total)
	}
	if _, ok := svc["default/web"]; !ok || svc["default/web"].Requests != 0 {
		t.Errorf("web (called by no one) %+v, want listed with no requests", svc["default/web"])
	}

	// Client side: what web's proxy saw of each version.
	from := m.stat("service", "--from", "web")
	if from["default/api-v1"].Requests != v1.Requests || from["default/api-v2"].Requests != v2.Requests || from["default/api-v1"].From != "default/web" {
		t.Errorf("from web: %+v; want the server side's split", from)
	}
	if r := m.stat("route", "api-canary")["default/api-canary"]; r.Requests != total || r.Success == nil || *r.Success != sr {
		t.Errorf("route api-canary: %+v, want %d requests at %v", r, total, sr)
	}
	if d := m.stat("dataplane", "api-1")["default/api-1"]; d.Requests != v1.Requests || d.TCPConnections < 1 {
		t.Errorf("dataplane api-1: %+v, want %d requests and its open connection from web", d, v1.Requests)
	}

	var edges telemetry.EdgeResult
	if err := json.Unmarshal([]byte(m.trellis("edges", "-o", "json", "--window", "30s")), &edges); err != nil {
		t.Fatal(err)
	}
	if len(edges.Edges) != 2 || edges.Edges[0].To != "default/api-v1" || edges.Edges[1].To != "default/api-v2" ||
		edges.Edges[0].From != "default/web" || edges.Edges[0].MTLS != "no" {
		t.Errorf("edges %+v; want web → api-v1 and web → api-v2, plaintext", edges.Edges)
	}
	table := m.trellis("stat", "--window", "30s")
	t.Logf("trellis stat:\n%s\ntrellis stat service --from web:\n%s\ntrellis edges:\n%s", table,
		m.trellis("stat", "service", "--from", "web", "--window", "30s"), m.trellis("edges", "--window", "30s"))
	for _, want := range []string{"NAMESPACE   NAME", "LATENCY_P99", "api-v1", "75.00%"} {
		if !strings.Contains(table, want) {
			t.Errorf("trellis stat table lacks %q:\n%s", want, table)
		}
	}

	// For a real Prometheus: cumulative counters on GET /metrics.
	resp, err := http.Get(m.api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := fmt.Sprintf(`trellis_mesh_requests_total{kind="service",mesh="default",name="default/api",result="failure",source=""} %d`, failing)
	if !strings.Contains(string(body), want) {
		t.Errorf("GET /metrics lacks %s", want)
	}
}
