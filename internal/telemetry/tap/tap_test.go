package tap

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/url"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trellis-mesh/trellis/internal/telemetry/accesslog"
)

func inbound() *Request {
	return &Request{
		Start: time.Date(2026, 11, 26, 6, 0, 0, 0, time.UTC), Duration: 1234 * time.Microsecond, Inbound: true,
		VirtualHost: "inbound", Cluster: "inbound:9081", Method: "GET", Authority: "reviews", Path: "/reviews/1?x=1",
		RequestID: "rid", Remote: "127.0.0.1:5000", Local: "127.0.0.1:9081", Status: 200, GRPCStatus: -1,
		BytesIn: 3, BytesOut: 12,
	}
}

func outbound() *Request {
	return &Request{
		Start: time.Date(2026, 11, 26, 6, 0, 0, 0, time.UTC), Duration: 2 * time.Millisecond,
		VirtualHost: "default/reviews:80", Cluster: "default/reviews-v2:80", Route: "default/reviews/rule/0",
		Method: "POST", Authority: "reviews", Path: "/api/x", Remote: "127.0.0.1:4000", Upstream: "127.0.0.1:9082",
		UpstreamTLS: true, Status: 503, GRPCStatus: 14, Flags: accesslog.NoHealthyUpstream, Reason: "no_healthy_upstream",
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Match
		r    *Request
		want bool
	}{
		{"empty matches inbound", Match{}, inbound(), true},
		{"empty matches outbound", Match{}, outbound(), true},
		{"direction inbound", Match{Direction: Inbound}, outbound(), false},
		{"direction outbound", Match{Direction: Outbound}, inbound(), false},
		{"inbound cluster", Match{Direction: Inbound, Clusters: []string{"inbound:9081"}}, inbound(), true},
		{"inbound other cluster", Match{Direction: Inbound, Clusters: []string{"inbound:1"}}, inbound(), false},
		{"outbound by virtual host", Match{Services: []string{"default/reviews"}}, outbound(), true},
		{"outbound by split cluster", Match{Services: []string{"default/reviews-v2"}}, outbound(), true},
		{"outbound prefix is not a service", Match{Services: []string{"default/rev"}}, outbound(), false},
		{"outbound other service", Match{Services: []string{"default/catalog"}}, outbound(), false},
		{"path prefix", Match{PathPrefix: "/reviews/"}, inbound(), true},
		{"path prefix misses", Match{PathPrefix: "/api"}, inbound(), false},
		{"method ignores case", Match{Method: "get"}, inbound(), true},
		{"method", Match{Method: "POST"}, inbound(), false},
		{"authority", Match{Authority: "REVIEWS"}, inbound(), true},
		{"authority misses", Match{Authority: "catalog"}, inbound(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := New(4)
			tp.Subscribe(Subscription{ID: "s", Match: tc.m})
			tp.Observe(tc.r)
			if got := len(tp.Events()) == 1; got != tc.want {
				t.Fatalf("matched = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestEventFields(t *testing.T) {
	tp := New(4)
	tp.Subscribe(Subscription{ID: "s"})
	in := inbound()
	id, _ := url.Parse("spiffe://default.trellis.local/default/frontend")
	in.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{URIs: []*url.URL{id}}}}
	tp.Observe(in)
	tp.Observe(outbound())
	got := []*Event{(<-tp.Events()).Event, (<-tp.Events()).Event}
	g := 14
	want := []*Event{{
		Time: in.Start, Direction: Inbound,
		Source:      Source{Identity: "spiffe://default.trellis.local/default/frontend", Address: "127.0.0.1:5000"},
		Destination: Destination{Address: "127.0.0.1:9081", Cluster: "inbound:9081"},
		RequestID:   "rid", Method: "GET", Authority: "reviews", Path: "/reviews/1?x=1", Status: 200, DurationMs: 1.234,
		BytesIn: 3, BytesOut: 12, ResponseFlags: "-", TLS: true,
	}, {
		Time: in.Start, Direction: Outbound,
		Source:      Source{Address: "127.0.0.1:4000"},
		Destination: Destination{Service: "default/reviews", Address: "127.0.0.1:9082", Cluster: "default/reviews-v2:80"},
		Route:       "default/reviews/rule/0", Method: "POST", Authority: "reviews", Path: "/api/x", Status: 503, GRPCStatus: &g,
		DurationMs: 2, ResponseFlags: "UH", Reason: "no_healthy_upstream", TLS: true,
	}}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("events (-want +got):\n%s", d)
	}
}

func TestRedaction(t *testing.T) {
	tp := New(4)
	tp.Subscribe(Subscription{ID: "s", Headers: true, Redact: []string{"X-Session"}})
	r := inbound()
	r.RequestHeader = http.Header{"Authorization": {"Bearer x"}, "Cookie": {"a=b"}, "X-Api-Key": {"k"},
		"Proxy-Authorization": {"p"}, "X-Session": {"s"}, "Accept": {"a", "b"}}
	r.ResponseHeader = http.Header{"Set-Cookie": {"c=d"}, "Content-Type": {"text/plain"}}
	tp.Observe(r)
	e := (<-tp.Events()).Event
	wantReq := map[string]string{"authorization": Redacted, "cookie": Redacted, "x-api-key": Redacted,
		"proxy-authorization": Redacted, "x-session": Redacted, "accept": "a, b"}
	wantRsp := map[string]string{"set-cookie": Redacted, "content-type": "text/plain"}
	if d := cmp.Diff(wantReq, e.RequestHeaders); d != "" {
		t.Errorf("request headers (-want +got):\n%s", d)
	}
	if d := cmp.Diff(wantRsp, e.ResponseHeaders); d != "" {
		t.Errorf("response headers (-want +got):\n%s", d)
	}

	// Without capture no header is sent at all.
	tp.Subscribe(Subscription{ID: "s"})
	tp.Observe(r)
	if e := (<-tp.Events()).Event; e.RequestHeaders != nil || e.ResponseHeaders != nil {
		t.Errorf("headers without capture: %v %v", e.RequestHeaders, e.ResponseHeaders)
	}
}

func TestRateCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tp := New(1000)
		tp.Subscribe(Subscription{ID: "s", MaxRPS: 10})
		count := func() int {
			n := 0
			for len(tp.Events()) > 0 {
				<-tp.Events()
				n++
			}
			return n
		}
		for range 100 { // a burst: the bucket holds 10
			tp.Observe(inbound())
		}
		if n := count(); n != 10 {
			t.Fatalf("burst: %d events, want 10", n)
		}
		if d := tp.TakeDropped()["s"]; d != 90 {
			t.Fatalf("dropped %d, want 90", d)
		}
		// 1000 requests a second for 3 s: 10 events a second.
		for range 3000 {
			time.Sleep(time.Millisecond)
			tp.Observe(inbound())
		}
		if n := count(); n < 29 || n > 31 {
			t.Fatalf("3 s at 1000 rps: %d events, want 30", n)
		}
		if d := tp.TakeDropped()["s"]; d < 2969 || d > 2971 {
			t.Fatalf("dropped %d, want 2970", d)
		}
	})
}

func TestQueueFullDrops(t *testing.T) {
	tp := New(2)
	tp.Subscribe(Subscription{ID: "s", MaxRPS: 1000})
	for range 5 {
		tp.Observe(inbound()) // never blocks
	}
	if len(tp.Events()) != 2 {
		t.Fatalf("queued %d, want 2", len(tp.Events()))
	}
	if d := tp.TakeDropped(); d["s"] != 3 {
		t.Fatalf("dropped %v, want s: 3", d)
	}
}

func TestCancel(t *testing.T) {
	tp := New(4)
	if tp.Active() {
		t.Fatal("active with no subscription")
	}
	tp.Subscribe(Subscription{ID: "a"})
	tp.Subscribe(Subscription{ID: "b"})
	tp.Subscribe(Subscription{ID: "a", Match: Match{Method: "PUT"}}) // replaces a
	if d := cmp.Diff([]string{"b", "a"}, tp.Subscriptions()); d != "" {
		t.Fatalf("subscriptions (-want +got):\n%s", d)
	}
	tp.Cancel("b")
	tp.Observe(inbound()) // GET: a wants PUT
	if len(tp.Events()) != 0 {
		t.Fatal("a replaced subscription still matched")
	}
	tp.Cancel("a")
	if tp.Active() {
		t.Fatal("active after every cancel")
	}
	tp.Subscribe(Subscription{ID: "c"})
	tp.Observe(inbound())
	tp.CancelAll()
	if tp.Active() || len(tp.Events()) != 0 {
		t.Fatal("CancelAll left a subscription or a queued event")
	}
}

func TestServiceOf(t *testing.T) {
	for in, want := range map[string]string{"default/reviews:80": "default/reviews", "inbound:9081": "", "x": "", "ns/a:b:1": "ns/a:b"} {
		if got := ServiceOf(in); got != want {
			t.Errorf("ServiceOf(%q) = %q, want %q", in, got, want)
		}
	}
}
