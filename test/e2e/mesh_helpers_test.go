package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// This file holds the mesh scenarios' building blocks: a `trellis control`
// process, the CLI run against it, and a mesh of `trellis echo` apps each
// behind its own `trellis proxy`, set up through `trellis apply`.

// controlPlane is a running `trellis control`.
type controlPlane struct {
	p        *proc
	api, xds string // http://HOST:PORT and HOST:PORT, as it printed them
	dir      string // its --data-dir
	cfg      string // the client config it wrote (TRELLIS_CONFIG)
}

var controlServing = regexp.MustCompile(`control plane: api on (http://\S+), xds on (\S+), data in`)

// startControl runs `trellis control` on apiAddr and xdsAddr with its data
// in dir and waits until it serves. A short --disconnect-grace keeps the
// scenarios fast; extra adds flags (the store, the replica's name).
func startControl(t *testing.T, dir, apiAddr, xdsAddr string, extra ...string) *controlPlane {
	t.Helper()
	args := append([]string{"control", "--data-dir", dir, "--api-addr", apiAddr, "--xds-addr", xdsAddr,
		"--disconnect-grace", "2s", "--drain-timeout", "2s"}, extra...)
	p := start(t, args...)
	var m []string
	poll(t, 30*time.Second, "trellis control to serve", func() (bool, string) {
		if p.exited() {
			t.Fatalf("trellis control exited (%v) before serving:\n%s", p.err, p.stderr())
		}
		m = controlServing.FindStringSubmatch(p.stderr())
		return m != nil, p.stderr()
	})
	return &controlPlane{p: p, api: m[1], xds: m[2], dir: dir, cfg: filepath.Join(dir, "config.yaml")}
}

// hostPort is the HOST:PORT of an http:// URL.
func hostPort(url string) string { return strings.TrimPrefix(url, "http://") }

// cli runs a trellis CLI command against the control plane whose client
// config is cfg and returns its exit code and output.
func cli(t *testing.T, cfg string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TRELLIS_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "TRELLIS_CONFIG="+cfg)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errOut.String()
}

// mustCLI is cli that requires exit 0 and returns stdout.
func mustCLI(t *testing.T, cfg string, args ...string) string {
	t.Helper()
	code, out, errOut := cli(t, cfg, args...)
	if code != 0 {
		t.Fatalf("trellis %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// applyYAML writes doc to a file in dir and applies it with `trellis apply -f`.
func applyYAML(t *testing.T, cfg, dir, file, doc string) string {
	t.Helper()
	return mustCLI(t, cfg, "apply", "-f", writeFile(t, dir, file, doc))
}

// writeFile writes data to dir/file and returns its path.
func writeFile(t *testing.T, dir, file, data string) string {
	t.Helper()
	path := filepath.Join(dir, file)
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// poll calls f until it reports true; past within it fails the test with
// what and f's last explanation.
func poll(t *testing.T, within time.Duration, what string, f func() (ok bool, last string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, last := f()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s; last: %s", within, what, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePorts returns n distinct loopback ports that were free a moment ago.
// All n are held open together so they differ; another process may take
// one before the mesh binds it, which fails the test with the bind error.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// kill stops p with SIGKILL, by PID, and waits for it; its cleanup then
// finds it exited and asserts nothing about its exit status.
func kill(t *testing.T, p *proc) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

// dataplaneStatus is the part of a Dataplane's status the scenarios read.
type dataplaneStatus struct {
	Connected    bool      `json:"connected"`
	ControlPlane string    `json:"controlPlane"`
	LastSeen     time.Time `json:"lastSeen"`
	Conditions   []struct {
		Type, Status, Reason string
	} `json:"conditions"`
}

func (s dataplaneStatus) ready() bool {
	for _, c := range s.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True"
		}
	}
	return false
}

// dpStatus reads a Dataplane's status with `trellis get dp NAME -o json`.
func dpStatus(t *testing.T, cfg, name string) dataplaneStatus {
	t.Helper()
	var dp struct {
		Status dataplaneStatus `json:"status"`
	}
	if err := json.Unmarshal([]byte(mustCLI(t, cfg, "get", "dp", name, "-o", "json")), &dp); err != nil {
		t.Fatalf("trellis get dp %s -o json: %v", name, err)
	}
	return dp.Status
}

// Mesh resources. Services web and api with version subsets api-v1 and
// api-v2, and a route splitting api between them.
const meshResources = `apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata: {name: default}
spec: {}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, protocol: http}]}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: api}
spec: {selector: {app: api}, ports: [{port: 80, protocol: http}]}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: api-v1}
spec: {selector: {app: api, version: v1}, ports: [{port: 80, protocol: http}]}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: api-v2}
spec: {selector: {app: api, version: v2}, ports: [{port: 80, protocol: http}]}
`

// routeName is the canary route's name.
const routeName = "api-canary"

// canaryRoute is the HTTPRoute sending requests for api to api-v1 and
// api-v2 by weight.
func canaryRoute(v1, v2 int) string {
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: %s}
spec:
  parentRefs: [{group: "", kind: Service, name: api, port: 80}]
  rules:
  - backendRefs:
    - {name: api-v1, port: 80, weight: %d}
    - {name: api-v2, port: 80, weight: %d}
`, routeName, v1, v2)
}

// instance is one app of the mesh: an echo server behind its own proxy.
type instance struct {
	name    string // the Dataplane's and the echo's name
	app     string // label app
	version string // label version and the echo's --version; "" for none
	client  bool   // the app calls api through an outbound port
}

// The instances of the scenarios: web-1 and web-2 call api, which is
// api-1 (v1) and api-2 (v2).
var (
	web1 = instance{name: "web-1", app: "web", client: true}
	web2 = instance{name: "web-2", app: "web", client: true}
	api1 = instance{name: "api-1", app: "api", version: "v1"}
	api2 = instance{name: "api-2", app: "api", version: "v2"}
)

// meshProxy is one running proxy of a mesh.
type meshProxy struct {
	p        *proc
	admin    string // http://HOST:PORT of its admin interface
	outbound string // for clients: http://127.0.0.1:PORT/, where the app calls api
	inbound  string // http://127.0.0.1:PORT/, where other proxies reach this one (mutual TLS)
}

// mesh is a running mesh.
type mesh struct {
	dir     string
	proxies map[string]*meshProxy
}

// dataplaneDoc is the Dataplane of in, with its proxy inbound on port,
// its app on appPort and, for a client, api on localPort.
func dataplaneDoc(in instance, port, appPort, localPort int) string {
	labels := "app: " + in.app
	if in.version != "" {
		labels += ", version: " + in.version
	}
	doc := fmt.Sprintf(`apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: %s, labels: {%s}}
spec:
  address: 127.0.0.1
  inbound: [{port: %d, servicePort: 80, appPort: %d}]
`, in.name, labels, port, appPort)
	if in.client {
		doc += fmt.Sprintf("  outbound: [{service: api, localPort: %d}]\n", localPort)
	}
	return doc
}

// startMesh runs an echo per instance and applies, with the CLI through
// cfg, the Mesh, the Services, the 90/10 route and the instances'
// Dataplanes; then it starts a proxy per instance on controlPlanes (the
// --control-plane value) and waits until each is ready and each client
// reaches both versions of api.
func startMesh(t *testing.T, cfg, controlPlanes string, instances ...instance) *mesh {
	t.Helper()
	m := &mesh{dir: t.TempDir(), proxies: map[string]*meshProxy{}}
	ports := freePorts(t, 2*len(instances))
	docs := []string{meshResources, canaryRoute(90, 10)}
	files := make([]string, len(instances))
	for i, in := range instances {
		version := in.version
		if version == "" {
			version = "v1"
		}
		e := start(t, "echo", "--listen", "127.0.0.1:0", "--name", in.name, "--version", version, "--drain-timeout", "2s")
		var appPort int
		fmt.Sscan(e.waitLine(`listening on http://127\.0\.0\.1:(\d+)`)[1], &appPort)
		doc := dataplaneDoc(in, ports[2*i], appPort, ports[2*i+1])
		docs = append(docs, doc)
		files[i] = writeFile(t, m.dir, in.name+".yaml", doc)
		m.proxies[in.name] = &meshProxy{inbound: fmt.Sprintf("http://127.0.0.1:%d/", ports[2*i])}
		if in.client {
			m.proxies[in.name].outbound = fmt.Sprintf("http://127.0.0.1:%d/", ports[2*i+1])
		}
	}
	out := applyYAML(t, cfg, m.dir, "mesh.yaml", strings.Join(docs, "---\n"))
	if n := strings.Count(out, " created\n"); n != 6+len(instances) {
		t.Fatalf("trellis apply: %d created, want %d:\n%s", n, 6+len(instances), out)
	}
	// The Mesh object turns mutual TLS on (STRICT by default): each proxy
	// gets a dataplane token for its service, as a user would hand out.
	tokens := map[string]string{}
	for _, in := range instances {
		if tokens[in.app] == "" {
			tok := strings.TrimSpace(mustCLI(t, cfg, "token", "create", "--mesh", "default", "--service", in.app))
			tokens[in.app] = writeFile(t, m.dir, in.app+".token", tok+"\n")
		}
	}
	for i, in := range instances {
		p := start(t, "proxy", "--control-plane", controlPlanes, "--dataplane", files[i],
			"--token-file", tokens[in.app], "--admin-address", "127.0.0.1:0", "--drain-timeout", "2s")
		m.proxies[in.name].p = p
		m.proxies[in.name].admin = "http://" + p.waitLine(`admin listening on (\S+)`)[1]
	}
	for _, in := range instances {
		mp := m.proxies[in.name]
		poll(t, 30*time.Second, in.name+" to be ready", func() (bool, string) {
			resp, err := http.Get(mp.admin + "/ready")
			if err != nil {
				return false, err.Error()
			}
			return resp.StatusCode == 200, readAll(resp)
		})
	}
	for _, in := range instances {
		if in.client {
			m.waitVersions(t, in.name, "v1", "v2")
		}
	}
	return m
}

// waitVersions polls a client proxy until it has answered from every one
// of the versions.
func (m *mesh) waitVersions(t *testing.T, client string, versions ...string) {
	t.Helper()
	c := newClient()
	defer c.CloseIdleConnections()
	seen := map[string]bool{}
	poll(t, 30*time.Second, client+" to reach api "+strings.Join(versions, " and "), func() (bool, string) {
		v, err := call(c, m.proxies[client].outbound)
		if err != nil {
			return false, err.Error()
		}
		seen[v] = true
		for _, want := range versions {
			if !seen[want] {
				return false, fmt.Sprintf("seen %v", seen)
			}
		}
		return true, ""
	})
}

// newClient is an HTTP client as an app would have one: keep-alive
// connections, a bound on each request.
func newClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
}

// call sends GET url and returns the x-echo-version of a 200 answer.
func call(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, resp.Header.Get("X-Trellis-Reason"))
	}
	return resp.Header.Get("X-Echo-Version"), nil
}

// count sends n requests to url from workers goroutines and counts the
// answers by version; failures count under their error.
func count(url string, n, workers int) map[string]int {
	c := newClient()
	defer c.CloseIdleConnections()
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	next := make(chan struct{})
	for range workers {
		wg.Go(func() {
			for range next {
				v, err := call(c, url)
				if err != nil {
					v = err.Error()
				}
				mu.Lock()
				counts[v]++
				mu.Unlock()
			}
		})
	}
	for range n {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	return counts
}
