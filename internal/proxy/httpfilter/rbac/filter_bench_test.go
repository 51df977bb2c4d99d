package rbac

import (
	"context"
	"net"
	"net/http"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"

	"github.com/trellis-mesh/trellis/internal/proxy/httpfilter"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
)

// BenchmarkFilter is the whole per-request cost of the filter: building
// the input from the request and its connection, shadow and enforced
// evaluation, counting.
func BenchmarkFilter(b *testing.B) {
	a := anyOf(b, &rbacv3.RBAC{}, `{
	  "rules":{"action":"DENY","policies":{"admin":{"permissions":[{"url_path":{"path":{"prefix":"/admin"}}}],"principals":[{"any":true}]},
	    "no-delete":{"permissions":[{"header":{"name":":method","string_match":{"exact":"DELETE"}}}],"principals":[{"remote_ip":{"address_prefix":"10.0.0.0","prefix_len":8}}]}}},
	  "shadow_rules":{"action":"ALLOW","policies":{"port":{"permissions":[{"destination_port":8080}],"principals":[{"any":true}]}}}}`)
	f, err := Builder{Metrics: metrics.New()}.Build("rbac", a)
	if err != nil {
		b.Fatal(err)
	}
	h := f.Wrap(httpfilter.HandlerFunc(func(*httpfilter.Request) error { return nil }))
	r, _ := http.NewRequest(http.MethodGet, "http://svc/api/v1/users", nil)
	r = r.WithContext(context.WithValue(context.Background(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 8080}))
	r.RemoteAddr = "10.1.2.3:40000"
	req := &httpfilter.Request{R: r, RemoteAddr: "192.0.2.7"}
	b.ReportAllocs()
	for b.Loop() {
		if err := h.Serve(req); err != nil {
			b.Fatal(err)
		}
	}
}
