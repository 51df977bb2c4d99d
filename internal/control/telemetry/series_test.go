package telemetry

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
)

// TestSeries: web-1, a proxy started after the aggregator, calls api with
// 1, 100, 200, 0 and 300 requests in five intervals (30 of the last
// failing); the series show each interval, and longer steps add
// intervals up.
func TestSeries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newAgg(t, Options{})
		reg := metrics.New()
		cl := reg.Cluster("default/api:8080")
		t0 := time.Now()
		for i, n := range []int{1, 100, 200, 0, 300} {
			for j := range n {
				code := 200
				if i == 4 && j < 30 {
					code = 503
				}
				cl.Done(code)
				cl.Duration.Observe(0.02)
			}
			push(t, a, "default/web-1", reg)
			time.Sleep(10 * time.Second)
		}
		// Now: the start of the sixth interval; a 1m window holds the six
		// before it, the first of them before the series began (no rate).
		res, err := a.Series(SeriesQuery{Kind: KindService, Name: "api", From: "web", Window: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if res.Window != "1m0s" || res.Step != "10s" || len(res.Rows) != 1 {
			t.Fatalf("window %s step %s rows %+v, want 1m0s, 10s and one row", res.Window, res.Step, res.Rows)
		}
		row := res.Rows[0]
		if row.Kind != "service" || row.Name != "default/api" || row.From != "default/web" || row.Mesh != "default" {
			t.Errorf("row %s %s from %s in %s, want service default/api from default/web in default", row.Kind, row.Name, row.From, row.Mesh)
		}
		wantRPS := []float64{0, 0.1, 10, 20, 0, 30}
		if len(row.Points) != len(wantRPS) {
			t.Fatalf("%d points, want %d: %+v", len(row.Points), len(wantRPS), row.Points)
		}
		for i, p := range row.Points {
			if want := t0.Add(time.Duration(i-1) * 10 * time.Second).UTC(); !p.Time.Equal(want) {
				t.Errorf("point %d at %v, want %v", i, p.Time, want)
			}
			if !near(p.RPS, wantRPS[i], 1e-9) {
				t.Errorf("point %d: %v rps, want %v", i, p.RPS, wantRPS[i])
			}
			if (p.Requests == 0) != (p.Success == nil) || (p.Requests == 0) != (p.P99 == nil) {
				t.Errorf("point %d: %d requests with success %v and p99 %v", i, p.Requests, p.Success, p.P99)
			}
		}
		if s := row.Points[5].Success; s == nil || !near(*s, 0.9, 1e-9) {
			t.Errorf("last point's success %v, want 0.9", s)
		}
		if p := row.Points[5].P99; p == nil || *p <= 10 || *p > 25 {
			t.Errorf("last point's p99 %v ms, want in (10, 25]", p)
		}

		for _, c := range []struct {
			step time.Duration
			rps  []float64
		}{
			{20 * time.Second, []float64{0.1, 15, 15}},
			{15 * time.Second, []float64{0.1, 15, 15}}, // rounded up to 20 s
			{40 * time.Second, []float64{0.1, 15}},     // the oldest step is shorter
		} {
			res, err := a.Series(SeriesQuery{Kind: KindService, Name: "default/api", From: "web", Window: time.Minute, Step: c.step})
			if err != nil {
				t.Fatal(err)
			}
			var got []float64
			for _, p := range res.Rows[0].Points {
				got = append(got, p.RPS)
			}
			if len(got) != len(c.rps) || !all(got, c.rps) {
				t.Errorf("step %v: rps %v, want %v", c.step, got, c.rps)
			}
		}

		// The server side of api never reported: no row.
		if res, err := a.Series(SeriesQuery{Kind: KindService, Name: "api"}); err != nil || len(res.Rows) != 0 {
			t.Errorf("server side of api: %+v, %v; want no rows", res.Rows, err)
		}
	})
}

func all(got, want []float64) bool {
	for i := range got {
		if !near(got[i], want[i], 1e-9) {
			return false
		}
	}
	return true
}

func TestSeriesRefusesBadQueries(t *testing.T) {
	a := newAgg(t, Options{Resolution: time.Second, Retention: 4 * time.Hour})
	for _, c := range []struct {
		q    SeriesQuery
		want string
	}{
		{SeriesQuery{Step: -time.Second}, "step: must be positive"},
		{SeriesQuery{Window: time.Minute, Step: 2 * time.Minute}, "step: at most the window"},
		{SeriesQuery{Window: 4 * time.Hour}, "step: the window holds 14400 steps, at most 1000"},
		{SeriesQuery{Window: 5 * time.Hour}, "window: at most 4h0m0s"},
		{SeriesQuery{Kind: KindDataplane, From: "web"}, "from: only for services and routes"},
	} {
		if _, err := a.Series(c.q); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.q, err, c.want)
		}
	}
}

// TestProxies: a proxy's pushed leaf expiry is remembered as a time; a
// proxy without an identity has none.
func TestProxies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newAgg(t, Options{})
		web := metrics.New()
		metrics.NewIdentity(web.Prom).Set("leaf", "default", "web", time.Now().Add(24*time.Hour))
		push(t, a, "default/web-1", web)
		time.Sleep(5 * time.Second)
		push(t, a, "default/api-1", metrics.New())
		ps := a.Proxies()
		if len(ps) != 2 || ps[0].Node != "default/api-1" || ps[1].Node != "default/web-1" {
			t.Fatalf("proxies %+v, want api-1 and web-1", ps)
		}
		if ps[0].LeafExpiry != nil || !ps[0].LastPush.Equal(time.Now()) {
			t.Errorf("api-1: %+v, want no leaf expiry and a push now", ps[0])
		}
		if e := ps[1].LeafExpiry; e == nil || !e.Equal(time.Now().Add(24*time.Hour-5*time.Second)) {
			t.Errorf("web-1's leaf expiry %v, want in 24h from its push", e)
		}
	})
}
