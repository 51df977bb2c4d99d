package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// demoPage is the part of the demo frontend's answer the test reads.
type demoPage struct {
	Product struct {
		Name string `json:"name"`
	} `json:"product"`
	Reviews []struct {
		Text string `json:"text"`
	} `json:"reviews"`
	ServedBy struct {
		Catalog, Reviews struct {
			Service, Instance, Version string
		}
	} `json:"servedBy"`
}

// TestDemo runs the README's command, `trellis demo`, as a user would: the
// frontend answers through the mesh with catalog's and reviews' content,
// the plain CLI (its config where the demo put it) lists every sidecar
// connected, the 90/10 canary shows in the answers and moves when the
// route is applied again, `trellis stat topic` shows reviews.viewed events
// published and delivered through NATS, and Ctrl-C stops everything, exit
// 0, leaving no process, port (the nats-server's included), file or
// directory behind.
func TestDemo(t *testing.T) {
	home := t.TempDir()
	cfg := filepath.Join(home, "trellis-config.yaml") // not there yet: the demo writes it
	t.Setenv("HOME", home)
	t.Setenv("TRELLIS_CONFIG", cfg)
	t.Setenv("TRELLIS_SERVER", "")
	t.Setenv("TRELLIS_TOKEN", "")
	started := time.Now()
	d := start(t, "demo", "--random-ports", "--rate", "20", "--report-every", "1s")
	dataDir := d.waitLine(`^Trellis demo: .*data in (\S+) \(removed at exit\)`)[1]
	api := d.waitLine(`control plane\s+API (http://\S+), xDS (\S+),`)
	natsAddr := d.waitLine(`^\s+messaging\s+nats-server nats://(\S+) with JetStream`)[1]
	entry := d.waitLine(`curl -s (http://\S+)\s+# the frontend, through the mesh`)[1]
	d.waitLine(`^\s+trellis stat topic\s+# events per topic`)
	d.waitLine(`^Ctrl-C stops everything`)
	t.Logf("the demo was up in %v", time.Since(started).Round(time.Millisecond))

	// The CLI finds the demo through the config it wrote.
	if _, err := os.Stat(cfg); err != nil {
		t.Fatalf("the demo did not write the client config: %v", err)
	}
	var dps struct {
		Items []struct {
			Metadata struct{ Name string }    `json:"metadata"`
			Status   struct{ Connected bool } `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(mustCLI(t, cfg, "get", "dp", "-o", "json")), &dps); err != nil {
		t.Fatal(err)
	}
	connected := map[string]bool{}
	for _, dp := range dps.Items {
		connected[dp.Metadata.Name] = dp.Status.Connected
	}
	for _, name := range []string{"loadgen-1", "frontend-1", "catalog-1", "reviews-1", "reviews-2", "notifier-1"} {
		if !connected[name] {
			t.Errorf("trellis get dp: %s not connected; all: %v", name, connected)
		}
	}
	if out := mustCLI(t, cfg, "get", "svc"); !strings.Contains(out, "reviews-v2") {
		t.Errorf("trellis get svc:\n%s", out)
	}

	// The canary, over 200 requests: 90/10 expects 20 of v2, standard
	// deviation about 4.2.
	versions := map[string]int{}
	for range 200 {
		p := getPage(t, entry)
		versions[p.ServedBy.Reviews.Version]++
	}
	if versions["v1"]+versions["v2"] != 200 || versions["v2"] < 5 || versions["v2"] > 40 {
		t.Errorf("reviews versions %v, want about 180 v1 and 20 v2", versions)
	}
	if m := d.waitLine(`^load: \d+ requests in 1s, (\d+) ok`); m[1] == "0" {
		t.Errorf("the load generator reports no successful request: %q", m[0])
	}

	// trellis tap, as the tour says: live requests from the sidecars.
	tapDemo(t, cfg)

	// trellis stat topic, as the tour says: reviews publishes an event per
	// read through its sidecar's bridge, notifier's sidecar delivers them.
	statTopicDemo(t, cfg, 45*time.Second)

	// Shift everything to v2, as the tour says (with a file instead of sed).
	route, err := os.ReadFile("../../examples/demo/route.yaml")
	if err != nil {
		t.Fatal(err)
	}
	shifted := strings.NewReplacer("weight: 90", "weight: 0", "weight: 10}", "weight: 100}").Replace(string(route))
	if out := applyYAML(t, cfg, home, "route.yaml", shifted); !strings.Contains(out, "httproute/reviews-canary configured") {
		t.Fatalf("apply: %s", out)
	}
	inARow := 0
	poll(t, 10*time.Second, "every answer from reviews v2", func() (bool, string) {
		v := getPage(t, entry).ServedBy.Reviews.Version
		if v != "v2" {
			inARow = 0
		} else {
			inARow++
		}
		return inARow == 20, v
	})

	// Ctrl-C.
	kids := children(t, d.cmd.Process.Pid)
	if err := d.stop(syscall.SIGINT, 15*time.Second); err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, d.stderr())
	}
	for _, pid := range kids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("child process %d of the demo is still there after it exited", pid)
		}
	}
	for _, addr := range []string{hostPort(api[1]), api[2], hostPort(strings.TrimSuffix(entry, "/")), natsAddr} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after the demo exited", addr)
		}
	}
	if _, err := os.Stat(cfg); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the client config the demo wrote is still there (%v)", err)
	}
	if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the data directory %s is still there (%v)", dataDir, err)
	}
}

// statTopicDemo polls `trellis stat topic -o json` until the Broker
// events' topic reviews.viewed shows messages published and delivered by
// the bridge, within the given time.
func statTopicDemo(t *testing.T, cfg string, within time.Duration) {
	t.Helper()
	type row struct {
		Broker, Topic, Via string
		Counts             struct{ Published, Delivered, Retried, DeadLettered uint64 }
		PerSecond          struct{ Published, Delivered float64 }
	}
	var found row
	var next time.Time
	last := "not run yet"
	poll(t, within, "trellis stat topic: reviews.viewed published > 0 and delivered > 0", func() (bool, string) {
		if time.Now().Before(next) {
			return false, last // one CLI run every 500ms
		}
		next = time.Now().Add(500 * time.Millisecond)
		code, out, errOut := cli(t, cfg, "stat", "topic", "-o", "json")
		if code != 0 {
			last = fmt.Sprintf("exit %d: %s", code, errOut)
			return false, last
		}
		var res struct{ Rows []row }
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("trellis stat topic -o json: %v\n%s", err, out)
		}
		last = out
		for _, r := range res.Rows {
			if r.Broker == "events" && r.Topic == "reviews.viewed" && r.Via == "bridge" &&
				r.Counts.Published > 0 && r.Counts.Delivered > 0 && r.PerSecond.Published > 0 && r.PerSecond.Delivered > 0 {
				found = r
				return true, ""
			}
		}
		return false, last
	})
	t.Logf("trellis stat topic: reviews.viewed published %d (%.1f/s), delivered %d (%.1f/s), retried %d, dead-lettered %d",
		found.Counts.Published, found.PerSecond.Published, found.Counts.Delivered, found.PerSecond.Delivered, found.Counts.Retried, found.Counts.DeadLettered)
}

// tapDemo runs `trellis tap reviews --count 10 -o json` against the demo,
// whose load generator feeds it, within 30 s: live events arrive from
// both sides of the frontend → reviews hop, over mutual TLS.
func tapDemo(t *testing.T, cfg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "tap", "reviews", "--count", "10", "-o", "json")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TRELLIS_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "TRELLIS_CONFIG="+cfg)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("trellis tap reviews: %v (within 30s)\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
	}
	type event struct {
		Type, Dataplane, Direction, Method, Message string
		Status                                      int
		TLS                                         bool
		Source, Destination                         struct{ Identity, Service, Cluster string }
	}
	var events []event
	inbound, outbound := 0, 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var e event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("trellis tap -o json: line %q: %v", line, err)
		}
		if e.Type != "event" {
			continue
		}
		events = append(events, e)
		if e.Destination.Service != "default/reviews" && !strings.HasPrefix(e.Destination.Cluster, "default/reviews") {
			t.Errorf("tap reviews: an event to %+v", e.Destination)
		}
		if e.Direction == "outbound" {
			outbound++
		}
		if e.Direction == "outbound" && (e.Dataplane != "default/frontend-1" || !strings.HasSuffix(e.Source.Identity, "/frontend") ||
			!strings.HasSuffix(e.Destination.Identity, "/reviews") || !e.TLS) {
			t.Errorf("tap reviews: outbound event %+v; want from the frontend's sidecar to a reviews identity over mutual TLS", e)
		}
		if e.Direction == "inbound" {
			inbound++
			if !e.TLS || !strings.HasSuffix(e.Source.Identity, "/frontend") || e.Source.Service != "default/frontend" ||
				!strings.HasPrefix(e.Dataplane, "default/reviews-") || e.Method != "GET" || e.Status == 0 {
				// reviews v2 fails some requests on purpose: any status will do.
				t.Errorf("tap reviews: inbound event %+v; want a GET from the frontend over mutual TLS, answered", e)
			}
		}
	}
	if len(events) != 10 || inbound == 0 || outbound == 0 {
		t.Errorf("trellis tap reviews --count 10: %d events (%d inbound, %d outbound), want both sides:\n%s", len(events), inbound, outbound, out)
	}
}

// TestDemoKeepsClientConfig checks that the demo leaves a client config
// pointing at another control plane alone and says how to reach it.
func TestDemoKeepsClientConfig(t *testing.T) {
	home := t.TempDir()
	cfg := filepath.Join(home, "config.yaml")
	const other = "server: http://192.0.2.1:7070\ntoken: theirs\n"
	writeFile(t, home, "config.yaml", other)
	t.Setenv("HOME", home)
	t.Setenv("TRELLIS_CONFIG", cfg)
	d := start(t, "demo", "--random-ports", "--rate", "0")
	own := d.waitLine(`^\s+export TRELLIS_CONFIG=(\S+)$`)[1]
	d.waitLine(`^Ctrl-C stops everything`)
	if out := mustCLI(t, own, "get", "dp"); !strings.Contains(out, "frontend-1") {
		t.Errorf("trellis get dp with the demo's own config:\n%s", out)
	}
	if err := d.stop(syscall.SIGINT, 15*time.Second); err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, d.stderr())
	}
	if data, err := os.ReadFile(cfg); err != nil || string(data) != other {
		t.Errorf("the user's client config changed: %q, %v", data, err)
	}
}

// TestDemoProxyOnly runs the data plane's demo and checks the canary split
// its bootstrap sets up.
func TestDemoProxyOnly(t *testing.T) {
	d := start(t, "demo", "--proxy-only", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	edge := d.waitLine(`a proxy on (http://\S+) in front`)[1]
	versions := map[string]int{}
	for range 200 {
		_, body := httpGet(t, edge+"/")
		switch {
		case strings.Contains(body, `"version":"v1"`):
			versions["v1"]++
		case strings.Contains(body, `"version":"v2"`):
			versions["v2"]++
		default:
			t.Fatalf("unexpected answer %q", body)
		}
	}
	// 90/10 over 200 requests: v2 expects 20, standard deviation about 4.2.
	if versions["v2"] < 5 || versions["v2"] > 40 {
		t.Errorf("split %v, want about 180/20", versions)
	}
	if err := d.stop(syscall.SIGINT, 15*time.Second); err != nil {
		t.Fatal(err)
	}
}

// getPage GETs the demo frontend and requires an answer with content from
// catalog and reviews.
func getPage(t *testing.T, url string) demoPage {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	var p demoPage
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &p) != nil {
		t.Fatalf("frontend: %s\n%s", resp.Status, body)
	}
	if p.ServedBy.Catalog.Service != "catalog" || p.Product.Name == "" ||
		p.ServedBy.Reviews.Service != "reviews" || len(p.Reviews) == 0 || p.Reviews[0].Text == "" {
		t.Fatalf("frontend answer without catalog's or reviews' content:\n%s", body)
	}
	if got := resp.Header.Get("X-Demo-Reviews-Version"); got != p.ServedBy.Reviews.Version {
		t.Fatalf("X-Demo-Reviews-Version %q, body says %q", got, p.ServedBy.Reviews.Version)
	}
	return p
}

// children returns the PIDs of pid's child processes, from /proc.
func children(t *testing.T, pid int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Logf("no /proc to list child processes: %v", err)
		return nil
	}
	var kids []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
		if f := strings.Fields(rest); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			kids = append(kids, n)
		}
	}
	return kids
}
