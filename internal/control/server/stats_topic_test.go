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

// TestStatsTopic serves kind=topic from a real aggregator fed by web-1's
// NATS and Kafka filters: 30 messages to orders.created and 60 Kafka
// records to payments in each of four 10 s intervals.
func TestStatsTopic(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 11, 26, 6, 0, 0, 0, time.UTC).UnixNano())
	agg, err := telemetry.New(telemetry.Options{Resolver: meshView{}, Now: func() time.Time { return time.Unix(0, now.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	reg := metrics.New()
	nats := reg.NATS("outbound:default/events:4222")
	kafka := reg.Kafka("outbound:default/kafka:9092")
	for range 4 {
		for range 30 {
			nats.Subject(metrics.NATSPublish, []byte("orders.created")).Add(10)
		}
		kafka.Topic("payments").Produced(60, 600)
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

	get := func(query string) telemetry.TopicResult {
		t.Helper()
		code, body := call(t, "GET", srv.URL+"/api/v1/stats?"+query, token, nil)
		if code != 200 {
			t.Fatalf("%s: %d %s", query, code, body)
		}
		var res telemetry.TopicResult
		if err := json.Unmarshal(body, &res); err != nil {
			t.Fatal(err)
		}
		return res
	}
	// The window of 30 s holds the last three of the four intervals.
	res := get("kind=topic&window=30s")
	if res.Window != "30s" || len(res.Rows) != 2 {
		t.Fatalf("%+v, want two topics over 30s", res)
	}
	if r := res.Rows[0]; r.Broker != "default/events:4222" || r.Topic != "orders.created" || r.Via != "nats" ||
		r.Counts.Produced != 90 || r.PerSecond.Produced != 3 {
		t.Errorf("first row %+v, want orders.created via nats: 90 produced, 3/s", r)
	}
	if r := res.Rows[1]; r.Broker != "default/kafka:9092" || r.Topic != "payments" || r.Counts.Produced != 180 || r.PerSecond.Produced != 6 {
		t.Errorf("second row %+v, want payments: 180 produced, 6/s", r)
	}
	if res := get("kind=topic&name=payments&from=kafka:9092&mesh=default"); len(res.Rows) != 1 || res.Rows[0].Topic != "payments" {
		t.Errorf("payments of kafka:9092: %+v, want its one row", res.Rows)
	}
	if res := get("kind=topic&from=events"); len(res.Rows) != 1 || res.Rows[0].Topic != "orders.created" {
		t.Errorf("topics of events: %+v, want orders.created", res.Rows)
	}

	for _, c := range []struct{ query, want string }{
		{"kind=topic&window=soon", `window: \"soon\" is not a duration`},
		{"kind=topic&window=1h", "window: at most 15m0s"},
		{"kind=topics", "kind: must be one of service, route, dataplane, topic"},
	} {
		code, body := call(t, "GET", srv.URL+"/api/v1/stats?"+c.query, token, nil)
		if code != 400 || !strings.Contains(string(body), c.want) {
			t.Errorf("%s: %d %s, want 400 saying %q", c.query, code, body, c.want)
		}
	}
	if code, _ := call(t, "GET", srv.URL+"/api/v1/stats?kind=topic", "", nil); code != 401 {
		t.Errorf("topics without a token: %d, want 401", code)
	}
}
