package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/internal/store/etcd/etcdtest"
)

// The proof of issue 4, driven through the CLI as a user would: a control
// plane, `trellis echo` apps each behind its own `trellis proxy`, Mesh,
// Services, Dataplanes and an HTTPRoute applied with `trellis apply`.

const (
	// switchStreak is how many answers in a row from the new version
	// count a proxy as switched.
	switchStreak = 20
	// switchBound is the asserted bound on a route change reaching every
	// proxy. The goal is one second, and the measured figure is
	// logged; the assertion is looser because a loaded 2-core CI machine
	// stalls processes for longer than that now and then, and a timing
	// threshold that flakes proves nothing.
	switchBound = 5 * time.Second
	// reconnectBound bounds a proxy's return to a control plane: its
	// back-off after a few failed attempts is up to 4 s, plus scheduling.
	reconnectBound = 30 * time.Second
)

func TestMeshCanary(t *testing.T) {
	cp := startControl(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0", "--name", "cp-1")
	m := startMesh(t, cp.cfg, cp.xds, web1, web2, api1, api2)

	// (a) The 90/10 split, within four standard deviations of a binomial
	// draw (a false failure about once in 15,000 runs; three would fail
	// one run in 370).
	const n, p = 1000, 0.9
	counts := count(m.proxies["web-1"].outbound, n, 8)
	sd := math.Sqrt(n * p * (1 - p))
	lo, hi := int(math.Ceil(n*p-4*sd)), int(math.Floor(n*p+4*sd))
	t.Logf("90/10 split from web-1: %v in %d requests (v1 bound [%d, %d])", counts, n, lo, hi)
	if counts["v1"]+counts["v2"] != n {
		t.Fatalf("%d requests, answers %v: some did not come from api v1 or v2", n, counts)
	}
	if v1 := counts["v1"]; v1 < lo || v1 > hi {
		t.Errorf("v1 answered %d of %d requests, outside [%d, %d] for a 90%% weight", v1, n, lo, hi)
	}

	// The hop between the sidecars is mutual TLS (the Mesh is STRICT by
	// default): a plaintext client reaching api-1's inbound port directly
	// gets no answer from the app.
	if body, err := call(newClient(), m.proxies["api-1"].inbound); err == nil {
		t.Errorf("plaintext request to api-1's STRICT inbound port answered %q", body)
	}

	// (b) Shift everything to v2 and time it on every client proxy.
	out := applyYAML(t, cp.cfg, m.dir, "route-0-100.yaml", canaryRoute(0, 100))
	applied := time.Now()
	if !strings.Contains(out, "httproute/"+routeName+" configured") {
		t.Errorf("apply 0/100: %q, want httproute/%s configured", out, routeName)
	}
	took := switched(t, m, applied, "v2", "web-1", "web-2")
	t.Logf("0/100 switched on all proxies in %d ms (web-1 %d ms, web-2 %d ms)",
		slices.Max(took).Milliseconds(), took[0].Milliseconds(), took[1].Milliseconds())
	if out := applyYAML(t, cp.cfg, m.dir, "route-0-100.yaml", canaryRoute(0, 100)); !strings.Contains(out, "httproute/"+routeName+" unchanged") {
		t.Errorf("applying the same route again: %q, want unchanged", out)
	}

	// (c) A route with a negative weight is refused as a whole, naming the
	// field; what is stored and served stays as it was.
	bad := strings.Replace(canaryRoute(0, 100), "weight: 0", "weight: -1", 1)
	if bad == canaryRoute(0, 100) {
		t.Fatal("the invalid route is the valid one")
	}
	code, stdout, stderr := cli(t, cp.cfg, "apply", "-f", writeFile(t, m.dir, "route-invalid.yaml", bad))
	if code != 1 || !strings.Contains(stderr, "nothing changed") ||
		!strings.Contains(stderr, "spec.rules[0].backendRefs[0].weight") {
		t.Errorf("apply of weight -1: exit %d, stdout %q, stderr %q; want exit 1, \"nothing changed\" and the field path",
			code, stdout, stderr)
	}
	for _, client := range []string{"web-1", "web-2"} {
		if c := count(m.proxies[client].outbound, 200, 4); c["v2"] != 200 {
			t.Errorf("after the refused route, %s answered %v in 200 requests, want all v2", client, c)
		}
	}
	if w := routeWeights(t, cp.cfg); !slices.Equal(w, []int{0, 100}) {
		t.Errorf("stored route weights after the refused apply = %v, want [0 100]", w)
	}

	// (d) The proxies whose configuration reads Service api: the clients
	// calling it (web-1, web-2) and the instances serving it (api-1,
	// api-2, whose inbound listeners are its port).
	desc := mustCLI(t, cp.cfg, "describe", "service", "api")
	want := []string{"default/api-1", "default/api-2", "default/web-1", "default/web-2"}
	if got := affected(desc); !slices.Equal(got, want) {
		t.Errorf("describe service api lists proxies %v, want %v:\n%s", got, want, desc)
	}
	// The route changes what the clients of api send.
	desc = mustCLI(t, cp.cfg, "describe", "httproute", routeName)
	if got := affected(desc); !slices.Contains(got, "default/web-1") || !slices.Contains(got, "default/web-2") {
		t.Errorf("describe httproute %s lists proxies %v, want web-1 and web-2 among them:\n%s", routeName, got, desc)
	}
}

func TestMeshControlPlaneRestart(t *testing.T) {
	dir := t.TempDir()
	cp := startControl(t, dir, "127.0.0.1:0", "127.0.0.1:0", "--name", "cp-1")
	m := startMesh(t, cp.cfg, cp.xds, web1, api1, api2)
	web := m.proxies["web-1"].outbound

	if err := cp.p.stop(syscall.SIGTERM, 20*time.Second); err != nil {
		t.Fatalf("trellis control: %v\nstderr:\n%s", err, cp.p.stderr())
	}
	for name, mp := range m.proxies {
		poll(t, 10*time.Second, name+" to notice the control plane is gone", func() (bool, string) {
			v := metricLine(get(t, mp.admin+"/stats/prometheus"), "trellis_xds_connected")
			return v == "0", "trellis_xds_connected " + v
		})
	}
	// Static stability: the proxies serve their last configuration.
	if c := count(web, 50, 1); c["v1"]+c["v2"] != 50 {
		t.Errorf("with the control plane down, web-1 answered %v in 50 requests, want all from api", c)
	}

	// Same data directory, same addresses: the proxies dial the address
	// they know.
	cp = startControl(t, dir, hostPort(cp.api), cp.xds, "--name", "cp-1")
	if got := serviceNames(t, cp.cfg); !slices.Equal(got, meshServices) {
		t.Errorf("after the restart, services %v, want %v", got, meshServices)
	}
	if w := routeWeights(t, cp.cfg); !slices.Equal(w, []int{90, 10}) {
		t.Errorf("after the restart, route weights %v, want [90 10]", w)
	}
	restarted := time.Now()
	for name, mp := range m.proxies {
		poll(t, reconnectBound, name+" to reconnect", func() (bool, string) {
			v := metricLine(get(t, mp.admin+"/stats/prometheus"), "trellis_xds_connected")
			return v == "1", "trellis_xds_connected " + v
		})
		// The restarted process registered it (its own log), and the
		// Dataplane says so.
		cp.p.waitStderr(`msg="proxy connected" node=default/` + name)
		if st := dpStatus(t, cp.cfg, name); !st.Connected || !st.ready() || st.ControlPlane != "cp-1" {
			t.Errorf("%s after reconnecting: status %+v, want connected and Ready on cp-1", name, st)
		}
	}
	t.Logf("all proxies reconnected %d ms after the restart", time.Since(restarted).Milliseconds())

	// Resync: a change made after the restart reaches the proxies.
	applyYAML(t, cp.cfg, m.dir, "route-0-100.yaml", canaryRoute(0, 100))
	took := switched(t, m, time.Now(), "v2", "web-1")
	t.Logf("0/100 after the restart switched web-1 in %d ms", took[0].Milliseconds())
}

func TestMeshEtcdFailover(t *testing.T) {
	endpoints := strings.Join(etcdtest.Start(t), ",")
	replica := func(name string) *controlPlane {
		return startControl(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0",
			"--store", "etcd", "--etcd-endpoints", endpoints, "--name", name)
	}
	a, b := replica("cp-a"), replica("cp-b")
	// Applied through A; every proxy knows both replicas.
	m := startMesh(t, a.cfg, a.xds+","+b.xds, web1, api1, api2)

	// B serves what was applied through A.
	if w := routeWeights(t, b.cfg); !slices.Equal(w, []int{90, 10}) {
		t.Errorf("route weights through cp-b = %v, want [90 10]", w)
	}
	if got := serviceNames(t, b.cfg); !slices.Equal(got, meshServices) {
		t.Errorf("services through cp-b %v, want %v", got, meshServices)
	}

	st := dpStatus(t, b.cfg, "web-1")
	if !st.Connected {
		t.Fatalf("web-1 status through cp-b: %+v, want connected", st)
	}
	victim, survivor, survivorName := a, b, "cp-b"
	if st.ControlPlane == "cp-b" {
		victim, survivor, survivorName = b, a, "cp-a"
	}
	before := map[string]string{}
	for name := range m.proxies {
		before[name] = dpStatus(t, survivor.cfg, name).ControlPlane
	}
	t.Logf("proxies on %v; killing %s", before, st.ControlPlane)
	kill(t, victim.p)
	killed := time.Now()

	if c := count(m.proxies["web-1"].outbound, 50, 1); c["v1"]+c["v2"] != 50 {
		t.Errorf("with %s killed, web-1 answered %v in 50 requests, want all from api", st.ControlPlane, c)
	}
	for name := range m.proxies {
		poll(t, reconnectBound, name+" to move to "+survivorName, func() (bool, string) {
			st := dpStatus(t, survivor.cfg, name)
			return st.Connected && st.ready() && st.ControlPlane == survivorName, fmt.Sprintf("%+v", st)
		})
		if before[name] != survivorName {
			t.Logf("%s moved to %s: status seen %d ms after the kill", name, survivorName, time.Since(killed).Milliseconds())
		}
	}

	applyYAML(t, survivor.cfg, m.dir, "route-0-100.yaml", canaryRoute(0, 100))
	took := switched(t, m, time.Now(), "v2", "web-1")
	t.Logf("0/100 through %s switched web-1 in %d ms", survivorName, took[0].Milliseconds())
}

// switched polls each client proxy until it answers from version
// switchStreak times in a row, and returns for each the time from since to
// the first answer of that streak. It fails the test past switchBound.
func switched(t *testing.T, m *mesh, since time.Time, version string, clients ...string) []time.Duration {
	t.Helper()
	took := make([]time.Duration, len(clients))
	errs := make([]string, len(clients))
	done := make(chan struct{})
	for i, client := range clients {
		go func() {
			defer func() { done <- struct{}{} }()
			c := newClient()
			defer c.CloseIdleConnections()
			streak, last := 0, ""
			var first time.Time
			for time.Since(since) < switchBound {
				sent := time.Now()
				v, err := call(c, m.proxies[client].outbound)
				if err != nil || v != version {
					streak, last = 0, fmt.Sprint(v, err)
					continue
				}
				if streak == 0 {
					first = sent
				}
				if streak++; streak == switchStreak {
					took[i] = first.Sub(since)
					return
				}
			}
			errs[i] = fmt.Sprintf("%s did not answer only from %s within %v of the change (last answer %q)", client, version, switchBound, last)
		}()
	}
	for range clients {
		<-done
	}
	for _, e := range errs {
		if e != "" {
			t.Error(e)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return took
}

// meshServices are the Services of meshResources, sorted.
var meshServices = []string{"api", "api-v1", "api-v2", "web"}

// serviceNames returns the names `trellis get svc -o json` lists, sorted.
func serviceNames(t *testing.T, cfg string) []string {
	t.Helper()
	var list struct {
		Items []struct{ Metadata struct{ Name string } }
	}
	if err := json.Unmarshal([]byte(mustCLI(t, cfg, "get", "svc", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, it := range list.Items {
		names = append(names, it.Metadata.Name)
	}
	slices.Sort(names)
	return names
}

// routeWeights returns the stored canary route's backend weights.
func routeWeights(t *testing.T, cfg string) []int {
	t.Helper()
	var r struct {
		Spec struct {
			Rules []struct {
				BackendRefs []struct{ Weight int }
			}
		}
	}
	if err := json.Unmarshal([]byte(mustCLI(t, cfg, "get", "httproute", routeName, "-o", "json")), &r); err != nil {
		t.Fatal(err)
	}
	var w []int
	for _, rule := range r.Spec.Rules {
		for _, b := range rule.BackendRefs {
			w = append(w, b.Weight)
		}
	}
	return w
}

// affected returns the proxies `trellis describe` lists under "Proxies
// affected:".
func affected(describe string) []string {
	_, list, ok := strings.Cut(describe, "Proxies affected:\n")
	if !ok {
		return nil
	}
	var names []string
	for l := range strings.Lines(list) {
		if !strings.HasPrefix(l, "  ") {
			break
		}
		names = append(names, strings.TrimSpace(l))
	}
	return names
}

// A proxy that goes away while the control plane is down is marked gone
// once the control plane is back and the grace period has passed: its
// stream closed, and it never came back (docs/control-plane.md,
// Registration).
func TestMeshProxyGoneWhileControlPlaneDown(t *testing.T) {
	dir := t.TempDir()
	cp := startControl(t, dir, "127.0.0.1:0", "127.0.0.1:0", "--name", "cp-1")
	m := startMesh(t, cp.cfg, cp.xds, api1)
	if err := cp.p.stop(syscall.SIGTERM, 20*time.Second); err != nil {
		t.Fatalf("trellis control: %v\nstderr:\n%s", err, cp.p.stderr())
	}
	if err := m.proxies["api-1"].p.stop(syscall.SIGTERM, 20*time.Second); err != nil {
		t.Fatalf("trellis proxy: %v", err)
	}
	cp = startControl(t, dir, hostPort(cp.api), cp.xds, "--name", "cp-1")
	// --disconnect-grace is 2s; allow for a loaded machine.
	poll(t, 10*time.Second, "api-1 to be marked gone", func() (bool, string) {
		st := dpStatus(t, cp.cfg, "api-1")
		return !st.Connected && !st.ready(), fmt.Sprintf("%+v", st)
	})
}
