package localratelimit

import (
	"net/http/httptest"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	lrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellis-mesh/trellis/internal/proxy/httpfilter"
	"github.com/trellis-mesh/trellis/internal/proxy/route"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

const benchRoutes = `
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - match: {prefix: "/"}
    route:
      cluster: app
      rate_limits:
      - actions: [{request_headers: {header_name: x-user, descriptor_key: user}}]
      - actions: [{remote_address: {}}]
`

const benchFilter = `
stat_prefix: bench
token_bucket: {max_tokens: 1000000000, tokens_per_fill: 1000000000, fill_interval: 1s}
filter_enabled: {default_value: {numerator: 100}}
filter_enforced: {default_value: {numerator: 100}}
descriptors:
- entries: [{key: user, value: ann}]
  token_bucket: {max_tokens: 1000000000, tokens_per_fill: 1000000000, fill_interval: 1s}
- entries: [{key: user, value: bob}]
  token_bucket: {max_tokens: 1000000000, tokens_per_fill: 1000000000, fill_interval: 1s}
- entries: [{key: remote_address, value: 10.0.0.1}]
  token_bucket: {max_tokens: 1000000000, tokens_per_fill: 1000000000, fill_interval: 1s}
`

// BenchmarkFilterDescriptors is one request through the filter: two
// descriptors built from the route's rate_limits, matched against three
// configured ones, two buckets taken, the decision counted.
func BenchmarkFilterDescriptors(b *testing.B) {
	rc := &routev3.RouteConfiguration{}
	if err := decode.Unmarshal([]byte(benchRoutes), rc); err != nil {
		b.Fatal(err)
	}
	tab, err := route.Compile(rc)
	if err != nil {
		b.Fatal(err)
	}
	pb := &lrlv3.LocalRateLimit{}
	if err := decode.Unmarshal([]byte(benchFilter), pb); err != nil {
		b.Fatal(err)
	}
	a, _ := anypb.New(pb)
	f, err := Builder{Metrics: metrics.New()}.Build("rl", a)
	if err != nil {
		b.Fatal(err)
	}
	h := f.Wrap(httpfilter.HandlerFunc(func(*httpfilter.Request) error { return nil }))
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-User", "ann")
	r.RemoteAddr = "10.0.0.1:4567"
	req := &httpfilter.Request{W: httptest.NewRecorder(), R: r, Route: tab.Routes[0]}
	b.ReportAllocs()
	for b.Loop() {
		if err := h.Serve(req); err != nil {
			b.Fatal(err)
		}
	}
}
