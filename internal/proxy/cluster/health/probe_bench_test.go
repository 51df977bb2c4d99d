package health

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkHTTPCheck is one HTTP/1.1 check over a reused loopback
// connection: the cost each host pays per interval.
func BenchmarkHTTPCheck(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	cfg := testConfig()
	cfg.HTTP = HTTPCheck{Path: "/healthz", Method: "GET", Expected: []StatusRange{{200, 201}}}
	c := New(cfg, Options{Cluster: "backend"})
	s := newSession(srv.Listener.Addr().String())
	defer s.closeConn()
	b.ReportAllocs()
	for b.Loop() {
		if r, _ := c.checkOnce(s); r != success {
			b.Fatal(r)
		}
	}
}
