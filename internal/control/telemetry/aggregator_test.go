package telemetry

import (
	"math"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
)

// resolver is a fixed view of the mesh: two proxies, web-1 (identity web)
// and api-1 (serving api and api-v1 on inbound port 8080).
type resolver struct{ proxies map[string]Proxy }

func (r resolver) Proxy(id string) (Proxy, bool) { p, ok := r.proxies[id]; return p, ok }
func (r resolver) Services() []ServiceRef {
	return []ServiceRef{{"default", "default/api"}, {"default", "default/api-v1"}, {"default", "default/idle"}}
}

var mesh = resolver{proxies: map[string]Proxy{
	"default/web-1": {Mesh: "default", Dataplane: "default/web-1", Service: "default/web"},
	"default/api-1": {Mesh: "default", Dataplane: "default/api-1", Service: "default/api",
		Inbound: map[string][]string{"inbound:8080": {"default/api", "default/api-v1"}}},
}}

func newAgg(t *testing.T, o Options) *Aggregator {
	t.Helper()
	if o.Resolver == nil {
		o.Resolver = mesh
	}
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func push(t *testing.T, a *Aggregator, node string, reg *metrics.Registry) {
	t.Helper()
	fams, err := reg.Prom.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Ingest(node, fams); err != nil {
		t.Fatal(err)
	}
}

func stat(t *testing.T, a *Aggregator, q Query) Row {
	t.Helper()
	res, err := a.Stats(q)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Rows {
		if matches(r.Name, q.Name) {
			return r
		}
	}
	t.Fatalf("no row for %+v in %+v", q, res.Rows)
	return Row{}
}

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

// TestEdgeRates drives a real proxy metrics registry: 100 requests every
// 10 s, 5 of them 503, at 20 ms.
func TestEdgeRates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newAgg(t, Options{})
		reg := metrics.New()
		cl := reg.Cluster("default/api:8080")
		for range 7 {
			for i := range 100 {
				code := 200
				if i < 5 {
					code = 503
				}
				cl.Done(code)
				cl.Duration.Observe(0.02)
			}
			cl.Connections.Inc()
			cl.BytesSent.Add(1000)
			cl.BytesReceived.Add(5000)
			push(t, a, "default/web-1", reg)
			time.Sleep(10 * time.Second)
		}
		r := stat(t, a, Query{Kind: KindService, Name: "api", From: "web"})
		if r.From != "default/web" || r.Requests != 600 || !near(r.RPS, 10, 1e-9) {
			t.Errorf("requests %d, rps %v, from %q; want 600 over the last 6 intervals, 10/s, default/web", r.Requests, r.RPS, r.From)
		}
		if r.Success == nil || !near(*r.Success, 0.95, 1e-9) {
			t.Errorf("success %v, want 0.95", r.Success)
		}
		// 20 ms lies in the (10 ms, 25 ms] bucket.
		for _, p := range []*float64{r.P50, r.P95, r.P99} {
			if p == nil || *p <= 10 || *p > 25 {
				t.Errorf("percentile %v ms, want in (10, 25]", p)
			}
		}
		if !near(r.TCPConnectionRate, 0.1, 1e-9) || !near(r.BytesSent, 100, 1e-9) || !near(r.BytesReceived, 500, 1e-9) {
			t.Errorf("cx %v/s sent %v/s received %v/s, want 0.1, 100, 500", r.TCPConnectionRate, r.BytesSent, r.BytesReceived)
		}
		// The server side of api has not reported: its row is there, empty.
		if r := stat(t, a, Query{Kind: KindService, Name: "default/api"}); r.Requests != 0 || r.Success != nil {
			t.Errorf("server side of api: %+v, want no requests", r)
		}
		e, err := a.Edges("", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(e.Edges) != 1 || e.Edges[0].From != "default/web" || e.Edges[0].To != "default/api" || e.Edges[0].MTLS != "unknown" {
			t.Errorf("edges %+v, want web → api with mTLS unknown", e.Edges)
		}
	})
}

// TestYoungSeries: a series two intervals old is rated over those two
// intervals, not the whole window; the interval in progress is left out.
func TestYoungSeries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newAgg(t, Options{})
		reg := metrics.New()
		cl := reg.Cluster("default/api:8080")
		for range 3 {
			for range 50 {
				cl.Done(200)
			}
			push(t, a, "default/web-1", reg)
			time.Sleep(10 * time.Second)
		}
		r := stat(t, a, Query{Kind: KindService, Name: "api", From: "web", Window: 5 * time.Minute})
		if r.Requests != 150 || !near(r.RPS, 5, 1e-9) {
			t.Errorf("requests %d rps %v, want 150 at 5/s", r.Requests, r.RPS)
		}
	})
}

// TestCounterReset: a restarted proxy's counters start again from zero;
// the increase after the restart counts, never a negative or the whole
// previous total.
func TestCounterReset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newAgg(t, Options{})
		reg := metrics.New()
		for range 1000 {
			reg.Cluster("default/api:8080").Done(200)
		}
		push(t, a, "default/web-1", reg)
		time.Sleep(10 * time.Second)
		reg = metrics.New() // the proxy restarted
		cl := reg.Cluster("default/api:8080")
		for range 40 {
			cl.Done(200)
		}
		cl.Done(500)
		push(t, a, "default/web-1", reg)
		time.Sleep(10 * time.Second)
		r := stat(t, a, Query{Kind: KindService, Name: "api", From: "web", Window: 10 * time.Second})
		if r.Requests != 41 || r.Success == nil || !near(*r.Success, 40.0/41, 1e-9) {
			t.Errorf("after the restart: %d requests, success %v; want 41, 40/41", r.Requests, r.Success)
		}
	})
}

// TestBaseline: the first push of a proxy that was running before the
// control plane (no process start time after it) is only a baseline.
func TestBaseline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newAgg(t, Options{})
		reg := metrics.New()
		cl := reg.Cluster("default/api:8080")
		for range 500 {
			cl.Done(200)
		}
		ingest := func() {
			fams, _ := reg.Prom.Gather()
			var kept []*dto.MetricFamily
			for _, f := range fams {
				if !strings.HasPrefix(f.GetName(), "process_") {
					kept = append(kept, f)
				}
			}
			if err := a.Ingest("default/web-1", kept); err != nil {
				t.Fatal(err)
			}
		}
		ingest()
		time.Sleep(10 * time.Second)
		for range 7 {
			cl.Done(200)
		}
		ingest()
		time.Sleep(10 * time.Second)
		if r := stat(t, a, Query{Kind: KindService, Name: "api", From: "web"}); r.Requests != 7 {
			t.Errorf("requests %d, want 7 (the 500 before the first push are history)", r.Requests)
		}
	})
}

// TestInbound: the server side of a proxy counts for every service it
// serves on that port, and for its dataplane.
func TestInbound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newAgg(t, Options{})
		reg := metrics.New()
		h := reg.HTTP("inbound:8080")
		ln := reg.Listener("inbound:10.0.0.2:8080")
		ln.Connections.Inc()
		ln.Active.Inc()
		for i := range 20 {
			h.Done(200 + 300*(i%2)) // half 500
			h.Duration.Observe(0.3)
		}
		reg.Cluster("inbound:8080").BytesReceived.Add(2000)
		push(t, a, "default/api-1", reg)
		time.Sleep(10 * time.Second)
		for _, q := range []Query{{Kind: KindService, Name: "api"}, {Kind: KindService, Name: "api-v1"}, {Kind: KindDataplane, Name: "api-1"}} {
			r := stat(t, a, q)
			if r.Requests != 20 || r.Success == nil || *r.Success != 0.5 || r.TCPConnections != 1 || !near(r.BytesReceived, 200, 1e-9) {
				t.Errorf("%v %s: %+v; want 20 requests, half failed, 1 connection open, 200 B/s received", q.Kind, q.Name, r)
			}
			if r.P50 == nil || *r.P50 <= 250 || *r.P50 > 500 {
				t.Errorf("%v %s: p50 %v ms, want in (250, 500]", q.Kind, q.Name, r.P50)
			}
		}
		res, _ := a.Stats(Query{Kind: KindService})
		var names []string
		for _, r := range res.Rows {
			names = append(names, r.Name)
		}
		if got := strings.Join(names, ","); got != "default/api,default/api-v1,default/idle" {
			t.Errorf("service list %s, want every service, idle ones too", got)
		}
		// Open connections fade when the proxy stops pushing.
		time.Sleep(DefaultStaleAfter)
		if r := stat(t, a, Query{Kind: KindDataplane, Name: "api-1"}); r.TCPConnections != 0 {
			t.Errorf("%d connections after the proxy went quiet, want 0", r.TCPConnections)
		}
	})
}

// TestGRPCFailures: a gRPC answer fails by its grpc-status under HTTP 200.
func TestGRPCFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newAgg(t, Options{})
		reg := metrics.New()
		h := reg.HTTP("inbound:8080")
		for _, st := range []int{0, 0, 0, 0, 5, 8, 14, 13} { // NOT_FOUND and RESOURCE_EXHAUSTED are the caller's
			h.Done(200)
			h.DoneGRPC(st)
		}
		push(t, a, "default/api-1", reg)
		time.Sleep(10 * time.Second)
		if r := stat(t, a, Query{Kind: KindService, Name: "api"}); r.Requests != 8 || r.Success == nil || *r.Success != 0.75 {
			t.Errorf("%+v, want 8 requests, 2 failed (UNAVAILABLE, INTERNAL)", r)
		}
	})
}

// TestRoutes: route numbers are kept per route (all rules and matches),
// by caller.
func TestRoutes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newAgg(t, Options{})
		reg := metrics.New()
		r0 := reg.Route("default/api:8080", "default/api:8080", "default/canary/rule/0/match/0")
		r1 := reg.Route("default/api:8080", "default/api:8080", "default/canary/rule/1/match/0")
		other := reg.Route("default/api:8080", "default/api:8080", "default")
		for range 10 {
			r0.Done(200)
			r1.Done(503)
			other.Done(200)
		}
		push(t, a, "default/web-1", reg)
		time.Sleep(10 * time.Second)
		res, err := a.Stats(Query{Kind: KindRoute})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Rows) != 1 || res.Rows[0].Name != "default/canary" || res.Rows[0].Requests != 20 || *res.Rows[0].Success != 0.5 {
			t.Errorf("routes %+v, want default/canary with 20 requests, half failed", res.Rows)
		}
		if r := stat(t, a, Query{Kind: KindRoute, Name: "canary", From: "web"}); r.From != "default/web" || r.Requests != 20 {
			t.Errorf("route from web: %+v", r)
		}
	})
}

// TestMTLS: an edge is mutually authenticated when its callers say so.
func TestMTLS(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newAgg(t, Options{})
		reg := metrics.New()
		reg.Cluster("default/api:8080").Done(200)
		fams, _ := reg.Prom.Gather()
		v, name := 1.0, famUpMTLS
		gauge := dto.MetricType_GAUGE
		cl, ln := "cluster", "default/api:8080"
		fams = append(fams, &dto.MetricFamily{Name: &name, Type: &gauge, Metric: []*dto.Metric{{
			Label: []*dto.LabelPair{{Name: &cl, Value: &ln}}, Gauge: &dto.Gauge{Value: &v},
		}}})
		if err := a.Ingest("default/web-1", fams); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Second)
		e, _ := a.Edges("default", 0)
		if len(e.Edges) != 1 || e.Edges[0].MTLS != "yes" {
			t.Errorf("edges %+v, want one with mTLS yes", e.Edges)
		}
	})
}

func TestUnknownProxyAndCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newAgg(t, Options{MaxSeries: 1})
		reg := metrics.New()
		reg.Cluster("default/api:8080").Done(200)
		reg.Cluster("default/db:5432").Done(200)
		fams, _ := reg.Prom.Gather()
		if err := a.Ingest("default/nobody", fams); err != ErrUnknownProxy {
			t.Errorf("unknown proxy: %v, want ErrUnknownProxy", err)
		}
		push(t, a, "default/web-1", reg)
		if len(a.series) != 1 || a.dropped != 1 {
			t.Errorf("%d series, %d dropped; want the cap of 1 held and 1 dropped", len(a.series), a.dropped)
		}
		// Without data for the retention, the series goes.
		time.Sleep(DefaultRetention + 2*DefaultResolution)
		push(t, a, "default/web-1", reg)
		if len(a.series) != 0 {
			t.Errorf("%d series after the retention without traffic, want 0", len(a.series))
		}
	})
}

func TestWindowChecks(t *testing.T) {
	a := newAgg(t, Options{})
	for _, tc := range []struct {
		name string
		q    Query
		want string
	}{
		{"negative", Query{Window: -time.Second}, "window: must be positive"},
		{"beyond retention", Query{Window: time.Hour}, "window: at most 15m0s (the retention)"},
		{"dataplane from", Query{Kind: KindDataplane, From: "web"}, "from: only for services and routes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := a.Stats(tc.q); err == nil || err.Error() != tc.want {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
	res, err := a.Stats(Query{Window: 15 * time.Second})
	if err != nil || res.Window != "20s" {
		t.Errorf("15s window: %q %v, want rounded up to 20s", res.Window, err)
	}
	if _, err := ParseKind("pod"); err == nil || !strings.Contains(err.Error(), "service, route, dataplane") {
		t.Errorf("ParseKind(pod): %v", err)
	}
}

func TestQuantile(t *testing.T) {
	var lat [nLat]uint64
	if _, ok := quantile(.5, &lat); ok {
		t.Error("quantile of nothing is ok")
	}
	lat[latIndex(0.1)] = 100 // all in (50 ms, 100 ms]
	if v, _ := quantile(.5, &lat); !near(v, 0.075, 1e-12) {
		t.Errorf("p50 %v, want 0.075 (interpolated)", v)
	}
	lat = [nLat]uint64{}
	lat[nLat-1] = 1
	if v, _ := quantile(.99, &lat); v != 60 {
		t.Errorf("p99 beyond the last bound %v, want 60", v)
	}
	lat = [nLat]uint64{}
	lat[0], lat[latIndex(1)] = 90, 10
	if v, _ := quantile(.5, &lat); v > 0.0005 {
		t.Errorf("p50 %v, want in the first bucket", v)
	}
	if v, _ := quantile(.95, &lat); v <= 0.5 || v > 1 {
		t.Errorf("p95 %v, want in (0.5, 1]", v)
	}
}
