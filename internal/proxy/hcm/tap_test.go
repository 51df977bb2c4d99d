package hcm_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster"
	"github.com/trellis-mesh/trellis/internal/proxy/hcm"
	"github.com/trellis-mesh/trellis/internal/telemetry/accesslog"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
	"github.com/trellis-mesh/trellis/internal/telemetry/tap"
	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

// tapServer is the bench connection manager (direct response on
// /direct) on an inbound listener, with tp as its tap.
func tapServer(tb testing.TB, tp *tap.Tap) *hcm.Server { return tapServerTo(tb, tp, "1", benchHCM) }

// tapServerTo is tapServer with connection manager config cfg (YAML),
// its cluster "up" at 127.0.0.1:port.
func tapServerTo(tb testing.TB, tp *tap.Tap, port, cfg string) *hcm.Server {
	reg := metrics.New()
	bs, err := decode.Bootstrap([]byte(strings.Replace(benchBootstrap, "PORT", port, 1)))
	if err != nil {
		tb.Fatal(err)
	}
	set, err := cluster.NewManager(reg, nil).Build(bs.GetStaticResources().GetClusters(), nil, "clusters")
	if err != nil {
		tb.Fatal(err)
	}
	pb := &hcmv3.HttpConnectionManager{}
	if err := decode.Unmarshal([]byte(cfg), pb); err != nil {
		tb.Fatal(err)
	}
	c, err := hcm.Build(pb, hcm.Deps{Listener: "inbound:127.0.0.1:9", Clusters: set, Metrics: reg, Sinks: accesslog.NewSinks(), Tap: tp})
	if err != nil {
		tb.Fatal(err)
	}
	return hcm.NewServer(c, nil)
}

// TestTapEvent checks what the connection manager hands the tap for a
// finished request, and that it hands nothing without a subscription.
func TestTapEvent(t *testing.T) {
	tp := tap.New(4)
	s := tapServer(t, tp)
	serve := func() {
		r := httptest.NewRequest("GET", "http://bench.local/direct?q=1", nil)
		r.RequestURI = "/direct?q=1" // origin form, as a server reads it
		r.Header.Set("Authorization", "secret")
		s.ServeHTTP(httptest.NewRecorder(), r)
	}
	serve()
	if len(tp.Events()) != 0 {
		t.Fatal("an event without a subscription")
	}
	tp.Subscribe(tap.Subscription{ID: "a", Match: tap.Match{Direction: tap.Inbound, PathPrefix: "/direct"}, Headers: true})
	serve()
	if len(tp.Events()) != 1 {
		t.Fatalf("%d events queued, want 1", len(tp.Events()))
	}
	m := <-tp.Events()
	e := m.Event
	if m.Sub != "a" || e.Direction != tap.Inbound || e.Method != "GET" || e.Path != "/direct?q=1" || e.Authority != "bench.local" ||
		e.Status != 200 || e.Route != "direct" || e.BytesOut != 2 || e.ResponseFlags != "-" || e.GRPCStatus != nil ||
		e.RequestID == "" || e.Source.Address == "" || e.TLS {
		t.Fatalf("event %+v", e)
	}
	if e.RequestHeaders["authorization"] != tap.Redacted || e.ResponseHeaders["content-type"] != "text/plain" {
		t.Fatalf("headers %v %v", e.RequestHeaders, e.ResponseHeaders)
	}
}

// BenchmarkTap measures the tap's cost per request on the connection
// manager's direct-response path: no subscription (the cost every request
// pays), a subscription that does not match, and one that matches every
// request (event built and queued; the queue is drained concurrently).
func BenchmarkTap(b *testing.B) {
	run := func(b *testing.B, tp *tap.Tap) {
		s := tapServer(b, tp)
		r := httptest.NewRequest("GET", "http://bench.local/direct", nil)
		w := &discardWriter{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			clear(w.h)
			r.Header = http.Header{"User-Agent": {"bench"}}
			s.ServeHTTP(w, r)
		}
	}
	b.Run("none", func(b *testing.B) { run(b, tap.New(0)) })
	b.Run("nomatch", func(b *testing.B) {
		tp := tap.New(0)
		tp.Subscribe(tap.Subscription{ID: "a", Match: tap.Match{Method: "PUT"}})
		run(b, tp)
	})
	matching := func(b *testing.B, sub tap.Subscription) {
		tp := tap.New(0)
		tp.Subscribe(sub)
		done := make(chan struct{})
		defer close(done)
		go func() {
			for {
				select {
				case <-tp.Events():
				case <-done:
					return
				}
			}
		}()
		run(b, tp)
	}
	b.Run("match", func(b *testing.B) { matching(b, tap.Subscription{ID: "a", MaxRPS: 1 << 30}) })
	// Body capture on: both bodies teed (the direct response's "ok").
	b.Run("match+body", func(b *testing.B) { matching(b, tap.Subscription{ID: "a", MaxRPS: 1 << 30, Body: tap.MaxBody}) })
	// A body subscription that the request cannot match (its method):
	// nothing is teed.
	b.Run("nomatch+body", func(b *testing.B) {
		tp := tap.New(0)
		tp.Subscribe(tap.Subscription{ID: "a", Match: tap.Match{Method: "PUT"}, Body: tap.MaxBody})
		run(b, tp)
	})
}
