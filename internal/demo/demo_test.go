package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/internal/control/client"
)

// lockedBuffer is a bytes.Buffer written and read from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRun runs the whole demo in the test's process (under -race): it
// answers through the mesh, sums up its load, carries reviews.viewed
// events from reviews to notifier through NATS (published and delivered
// in the control plane's topic metrics), and stops cleanly, leaving
// neither the client config it wrote, nor its data directory, nor a
// listening nats-server.
func TestRun(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	var out, log lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{RandomPorts: true, Rate: 20, ReportEvery: 300 * time.Millisecond, ClientConfig: cfg, Out: &out, Log: &log})
	}()

	var m []string
	wait := func(what string, re *regexp.Regexp) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for m = re.FindStringSubmatch(out.String()); m == nil; m = re.FindStringSubmatch(out.String()) {
			select {
			case err := <-done:
				t.Fatalf("Run returned %v before %s\nout:\n%s\nlog:\n%s", err, what, out.String(), log.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s\nout:\n%s\nlog:\n%s", what, out.String(), log.String())
			}
			time.Sleep(20 * time.Millisecond) // polling the output
		}
	}
	wait("tour", regexp.MustCompile(`(?m)^  curl -s (http://\S+)\s+# the frontend, through the mesh$`))
	entry := m[1]
	wait("data directory", regexp.MustCompile(`data in (\S+) \(removed at exit\)`))
	dir := m[1]
	wait("nats-server", regexp.MustCompile(`(?m)^  messaging\s+nats-server nats://(127\.0\.0\.1:\d+) with JetStream`))
	natsAddr := m[1]
	wait("stat topic in the tour", regexp.MustCompile(`(?m)^  trellis stat topic\s+# events per topic`))

	resp, err := http.Get(entry)
	if err != nil {
		t.Fatal(err)
	}
	var p Page
	err = json.NewDecoder(resp.Body).Decode(&p)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || p.ServedBy.Catalog.Instance != "catalog-1" || p.ServedBy.Reviews.Service != "reviews" {
		t.Fatalf("frontend: %s %+v %v", resp.Status, p, err)
	}
	if _, err := os.Stat(cfg); err != nil {
		t.Errorf("client config: %v", err)
	}
	wait("load summary", regexp.MustCompile(`(?m)^load: \d+ requests in 300ms, [1-9]\d* ok`))
	wait("dashboard URL", regexp.MustCompile(`(?m)^  dashboard\s+(http://\S+)/ui/#token=(\S+)$`))
	checkDashboard(t, m[1], m[2])
	checkTopic(t, m[1], m[2], 30*time.Second)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v\nlog:\n%s", err, log.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15s of the end of its context")
	}
	for _, path := range []string{cfg, dir} {
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there after Run: %v", path, err)
		}
	}
	if resp, err := http.Get(entry); err == nil {
		resp.Body.Close()
		t.Errorf("the frontend still answers after Run")
	}
	if c, err := net.DialTimeout("tcp", natsAddr, time.Second); err == nil {
		c.Close()
		t.Errorf("nats-server on %s still accepts connections after Run", natsAddr)
	}
}

// checkTopic polls the control plane's topic metrics until reviews.viewed
// of the Broker events shows messages published and delivered.
func checkTopic(t *testing.T, api, fragToken string, within time.Duration) {
	t.Helper()
	token, err := url.QueryUnescape(fragToken)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(client.Config{Server: api, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(within)
	last := "no answer"
	for {
		res, err := cl.Topics(context.Background(), client.StatsQuery{Kind: "topic", Window: time.Minute})
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("%+v", res.Rows)
			for _, r := range res.Rows {
				if r.Broker == brokerName && r.Topic == topicViewed && r.Via == "bridge" && r.Counts.Published > 0 && r.Counts.Delivered > 0 {
					t.Logf("topic %s: published %d, delivered %d, retried %d, dead-lettered %d",
						r.Topic, r.Counts.Published, r.Counts.Delivered, r.Counts.Retried, r.Counts.DeadLettered)
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("within %v, no topic %s of broker %s with messages published and delivered; last: %s", within, topicViewed, brokerName, last)
		}
		time.Sleep(250 * time.Millisecond) // polling the control plane's metrics
	}
}

// checkDashboard opens the dashboard URL the tour printed, and the API
// with the token in its fragment.
func checkDashboard(t *testing.T, api, fragToken string) {
	t.Helper()
	resp, err := http.Get(api + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "<title>Trellis dashboard</title>") {
		t.Errorf("dashboard page: %s\n%s", resp.Status, page)
	}
	token, err := url.QueryUnescape(fragToken)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, api+"/api/v1/meshes", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the API with the dashboard URL's token: %s, want 200", resp.Status)
	}
}
