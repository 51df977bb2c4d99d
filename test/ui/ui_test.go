// Package ui_test is the dashboard's browser test: it runs `trellis demo`
// as a child process, waits for its golden metrics to show traffic, then
// drives the dashboard in Debian's Chromium with playwright-core
// (testdata/dashboard.mjs), asserting what a user sees in each view and
// saving a screenshot of each.
//
// Needs chromium, node, and testdata/node_modules (npm ci in testdata;
// scripts/test.sh does both). Without them the test skips, unless CI is
// "true": then their absence fails it.
package ui_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// requirements returns what the browser test lacks on this machine.
func requirements(t *testing.T) (chromium string, missing []string) {
	t.Helper()
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		missing = append(missing, "chromium (apt-get install chromium; or set CHROMIUM)")
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing = append(missing, "node")
	}
	if _, err := os.Stat(filepath.Join("testdata", "node_modules", "playwright-core", "package.json")); err != nil {
		missing = append(missing, "test/ui/testdata/node_modules (run npm ci there)")
	}
	return chromium, missing
}

// demo is the running `trellis demo`.
type demo struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	out   strings.Builder
	lines chan string
	done  chan struct{}
}

func (d *demo) output() string { d.mu.Lock(); defer d.mu.Unlock(); return d.out.String() }

// startDemo builds trellis and starts the demo in its own process group,
// stopped (the whole group) in Cleanup.
func startDemo(t *testing.T) *demo {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "trellis")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/trellis")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	home := t.TempDir()
	d := &demo{lines: make(chan string, 1024), done: make(chan struct{})}
	d.cmd = exec.Command(bin, "demo", "--random-ports", "--rate", "20", "--report-every", "1m")
	d.cmd.Env = append(os.Environ(), "HOME="+home, "TRELLIS_CONFIG="+filepath.Join(home, "config.yaml"), "TRELLIS_SERVER=", "TRELLIS_TOKEN=")
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.cmd.Stderr = &lockedWriter{d}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			d.mu.Lock()
			d.out.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
			select {
			case d.lines <- sc.Text():
			default:
			}
		}
		d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		pgid := d.cmd.Process.Pid
		syscall.Kill(-pgid, syscall.SIGINT) // Ctrl-C, to the demo and its sidecars
		select {
		case <-d.done:
		case <-time.After(15 * time.Second):
			syscall.Kill(-pgid, syscall.SIGKILL)
			<-d.done
			t.Errorf("the demo did not stop within 15s of SIGINT; killed\n%s", d.output())
		}
	})
	return d
}

type lockedWriter struct{ d *demo }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.d.mu.Lock()
	defer w.d.mu.Unlock()
	return w.d.out.Write(p)
}

// waitLine returns the submatches of the first demo output line matching re.
func (d *demo) waitLine(t *testing.T, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l := <-d.lines:
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-d.done:
			t.Fatalf("the demo exited before printing %s:\n%s", re, d.output())
		case <-deadline:
			t.Fatalf("the demo did not print %s within %v:\n%s", re, timeout, d.output())
		}
	}
}

// waitTraffic polls the golden metrics until every demo service shows
// requests: what the dashboard's assertions need.
func waitTraffic(t *testing.T, api, token string, timeout time.Duration) {
	t.Helper()
	want := []string{"default/frontend", "default/catalog", "default/reviews-v1", "default/reviews-v2"}
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, api+"/api/v1/stats?kind=service&window=1m", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		var res struct {
			Rows []struct {
				Name string  `json:"name"`
				RPS  float64 `json:"rps"`
			} `json:"rows"`
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&res)
			resp.Body.Close()
		}
		rps := map[string]float64{}
		for _, r := range res.Rows {
			rps[r.Name] = r.RPS
		}
		ok := err == nil
		for _, s := range want {
			ok = ok && rps[s] > 0
		}
		if ok {
			return
		}
		last = fmt.Sprintf("%v %v", rps, err)
		time.Sleep(500 * time.Millisecond) // polling the API
	}
	t.Fatalf("no traffic on every demo service within %v; last: %s", timeout, last)
}

// TestDashboard drives the dashboard of a running demo in Chromium; see
// testdata/dashboard.mjs for what it asserts. Screenshots go to
// $TRELLIS_SCREENSHOTS if set (docs/img holds a committed set), else to
// a temporary directory.
func TestDashboard(t *testing.T) {
	chromium, missing := requirements(t)
	if len(missing) > 0 {
		msg := "the browser test needs " + strings.Join(missing, ", ")
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	started := time.Now()
	d := startDemo(t)
	m := d.waitLine(t, regexp.MustCompile(`^\s+dashboard\s+(http://\S+)/ui/(#token=(\S+))?$`), 60*time.Second)
	dashboard := m[1] + "/ui/" + m[2]
	token, err := url.QueryUnescape(m[3])
	if err != nil {
		t.Fatal(err)
	}
	waitTraffic(t, m[1], token, 45*time.Second)
	t.Logf("demo up with traffic after %v", time.Since(started).Round(time.Millisecond))

	dir := os.Getenv("TRELLIS_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	} else if dir, err = filepath.Abs(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	node := exec.CommandContext(ctx, "node", "dashboard.mjs", dashboard, dir)
	node.Dir = "testdata"
	node.Env = append(os.Environ(), "CHROMIUM="+chromium)
	node.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Chromium's processes go with it
	node.Cancel = func() error { return syscall.Kill(-node.Process.Pid, syscall.SIGKILL) }
	var output bytes.Buffer
	node.Stdout, node.Stderr = &output, &output
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	// Chromium runs in node's process group: whatever node leaves there
	// (it crashed before closing the browser) goes too.
	t.Cleanup(func() { syscall.Kill(-node.Process.Pid, syscall.SIGKILL) })
	err = node.Wait()
	out := output.Bytes()
	t.Logf("dashboard.mjs (%v):\n%s", time.Since(started).Round(time.Millisecond), out)
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) || ctx.Err() != nil {
			t.Fatalf("the browser test failed (%v, ctx %v); demo output:\n%s", err, ctx.Err(), d.output())
		}
		t.Fatal(err)
	}
	for _, v := range []string{"overview", "services", "routes", "resources", "resources-refused", "dataplanes", "tap"} {
		if fi, err := os.Stat(filepath.Join(dir, "dashboard-"+v+".png")); err != nil || fi.Size() == 0 {
			t.Errorf("screenshot of %s: %v", v, err)
		}
	}
	if strings.Contains(string(out), "not covered: tap") {
		t.Log("the tap view is not covered: this control plane has no GET /api/v1/tap")
	}
}
