package server_test

import (
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/internal/control/manager"
	"github.com/trellis-mesh/trellis/internal/control/server"
	"github.com/trellis-mesh/trellis/internal/control/telemetry"
	"github.com/trellis-mesh/trellis/internal/store/bolt"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
)

// meshView is the aggregator's view of a mesh of one proxy, web-1, with
// the identity of service web.
type meshView struct{}

func (meshView) Proxy(id string) (telemetry.Proxy, bool) {
	if id != "default/web-1" {
		return telemetry.Proxy{}, false
	}
	return telemetry.Proxy{Mesh: "default", Dataplane: "default/web-1", Service: "default/web"}, true
}

func (meshView) Services() []telemetry.ServiceRef {
	return []telemetry.ServiceRef{{Mesh: "default", Name: "default/api"}}
}

// startStats serves the API with a real aggregator on a clock the test
// moves, fed by web-1: 50 requests to api in each of three intervals.
func startStats(t *testing.T) string {
	t.Helper()
	var now atomic.Int64
	now.Store(time.Date(2026, 11, 26, 6, 0, 0, 0, time.UTC).UnixNano())
	agg, err := telemetry.New(telemetry.Options{Resolver: meshView{}, Now: func() time.Time { return time.Unix(0, now.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	reg := metrics.New()
	// The proxy's gauge counts down on the real clock.
	metrics.NewIdentity(reg.Prom).Set("leaf", "default", "web", time.Now().Add(time.Hour))
	cl := reg.Cluster("default/api:8080")
	for range 3 {
		for range 50 {
			cl.Done(200)
			cl.Duration.Observe(0.003)
		}
		fams, err := reg.Prom.Gather()
		if err != nil {
			t.Fatal(err)
		}
		if err := agg.Ingest("default/web-1", fams); err != nil {
			t.Fatal(err)
		}
		now.Add(int64(10 * time.Second))
	}
	s, err := bolt.Open(filepath.Join(t.TempDir(), "trellis.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.New(server.Options{Manager: manager.New(s), Token: token, Stats: agg}))
	t.Cleanup(func() { srv.Close(); s.Close() })
	return srv.URL
}

func TestStatsSeries(t *testing.T) {
	url := startStats(t)
	code, body := call(t, "GET", url+"/api/v1/stats/series?kind=service&name=api&from=web&window=1m&step=20s", token, nil)
	if code != 200 {
		t.Fatalf("series: %d %s", code, body)
	}
	var res telemetry.SeriesResult
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatal(err)
	}
	if res.Window != "1m0s" || res.Step != "20s" || len(res.Rows) != 1 || len(res.Rows[0].Points) != 3 {
		t.Fatalf("series %s", body)
	}
	var rps []float64
	for _, p := range res.Rows[0].Points {
		rps = append(rps, p.RPS)
	}
	// Three intervals of 5/s each, the newest three of the six: the
	// first step is before the series, the second holds one of its
	// intervals out of the two it spans, the third two.
	if rps[0] != 0 || rps[1] != 5 || rps[2] != 5 {
		t.Errorf("rps per step %v, want [0 5 5]\n%s", rps, body)
	}

	for _, c := range []struct{ query, want string }{
		{"step=ten", `step: \"ten\" is not a duration (try 10s)`},
		{"window=1m&step=2m", "step: at most the window (1m0s)"},
		{"kind=pod", "kind: must be one of service, route, dataplane"},
	} {
		code, body := call(t, "GET", url+"/api/v1/stats/series?"+c.query, token, nil)
		if code != 400 || !strings.Contains(string(body), c.want) {
			t.Errorf("%s: %d %s, want 400 saying %q", c.query, code, body, c.want)
		}
	}
	if code, _ := call(t, "GET", url+"/api/v1/stats/series", "wrong", nil); code != 401 {
		t.Errorf("series with a wrong token: %d, want 401", code)
	}
}

func TestStatsProxies(t *testing.T) {
	url := startStats(t)
	code, body := call(t, "GET", url+"/api/v1/stats/proxies", token, nil)
	if code != 200 {
		t.Fatalf("proxies: %d %s", code, body)
	}
	var res server.ProxiesResponse
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatal(err)
	}
	// The last push came at 06:00:20 (the aggregator's clock), when the
	// leaf had an hour left (less the time the test took).
	want := time.Date(2026, 11, 26, 7, 0, 20, 0, time.UTC)
	if len(res.Items) != 1 || res.Items[0].Node != "default/web-1" || res.Items[0].LeafExpiry == nil ||
		res.Items[0].LeafExpiry.Sub(want).Abs() > 5*time.Second {
		t.Errorf("proxies %s, want web-1 with its leaf expiring at %v", body, want)
	}
	if code, _ := call(t, "GET", url+"/api/v1/stats/proxies", "", nil); code != 401 {
		t.Errorf("proxies without a token: %d, want 401", code)
	}
}
