package route

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/trellis-mesh/trellis/internal/proxy/ratelimit"
	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

const rateLimitTable = `
virtual_hosts:
- name: vh
  domains: ["*"]
  rate_limits: [{actions: [{generic_key: {descriptor_value: vh}}]}]
  routes:
  - match: {prefix: "/"}
    route:
      cluster: app
      rate_limits:
      - actions: [{request_headers: {header_name: x-user, descriptor_key: user}}, {destination_cluster: {}}]
      - actions: [{request_headers: {header_name: x-user, descriptor_key: user, skip_if_absent: true}}, {remote_address: {}}]
      - stage: 1
        actions: [{generic_key: {descriptor_key: tier, descriptor_value: gold}}]
      - actions: [{header_value_match: {descriptor_value: api, headers: [{name: x-api, present_match: true}]}}]
      - actions: [{header_value_match: {descriptor_key: browser, descriptor_value: "no", expect_match: false, headers: [{name: user-agent, string_match: {prefix: Mozilla}}]}}]
      - actions: [{masked_remote_address: {v4_prefix_mask_len: 24}}]
`

func TestRateLimitDescriptors(t *testing.T) {
	tab := compile(t, rateLimitTable)
	rt := tab.Routes[0]
	if len(rt.VirtualHost.RateLimits) != 1 || len(rt.RateLimits) != 6 {
		t.Fatalf("rate limits: vh %d route %d", len(rt.VirtualHost.RateLimits), len(rt.RateLimits))
	}
	describe := func(headers map[string]string, stage uint32) string {
		r := httptest.NewRequest("GET", "/", nil)
		for k, v := range headers {
			r.Header.Set(k, v)
		}
		in := &RateLimitInput{Request: r, RemoteAddr: "10.1.2.3:5555", Cluster: rt.Cluster}
		var out []string
		for i := range rt.RateLimits {
			if rt.RateLimits[i].Stage != stage {
				continue
			}
			e, ok := rt.RateLimits[i].Append(nil, in)
			if ok {
				out = append(out, fmt.Sprint(e))
			}
		}
		return strings.Join(out, " ")
	}
	tests := []struct {
		name    string
		headers map[string]string
		stage   uint32
		want    string
	}{
		{name: "no headers", want: "[{remote_address 10.1.2.3}] [{browser no}] [{masked_remote_address 10.1.2.0/24}]"},
		{name: "user", headers: map[string]string{"x-user": "ann", "x-api": "1", "user-agent": "Mozilla/5"},
			want: "[{user ann} {destination_cluster app}] [{user ann} {remote_address 10.1.2.3}] [{header_match api}] [{masked_remote_address 10.1.2.0/24}]"},
		{name: "stage 1", stage: 1, want: "[{tier gold}]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := describe(tc.headers, tc.stage); got != tc.want {
				t.Fatalf("descriptors\n got %s\nwant %s", got, tc.want)
			}
		})
	}
	if e, ok := rt.VirtualHost.RateLimits[0].Append(nil, &RateLimitInput{Request: httptest.NewRequest("GET", "/", nil)}); !ok || fmt.Sprint(e) != "[{generic_key vh}]" {
		t.Fatalf("virtual host descriptor %v %v", e, ok)
	}
}

func TestRateLimitErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{name: "no actions", yaml: `[{}]`, want: "rate_limits[0].actions: at least one action"},
		{name: "header without key", yaml: `[{actions: [{request_headers: {header_name: x}}]}]`, want: "rate_limits[0].actions[0].request_headers.descriptor_key: required"},
		{name: "generic without value", yaml: `[{actions: [{generic_key: {}}]}]`, want: "generic_key.descriptor_value: required"},
		{name: "mask too long", yaml: `[{actions: [{masked_remote_address: {v4_prefix_mask_len: 33}}]}]`, want: "v4_prefix_mask_len: 33 is above 32"},
		{name: "stage", yaml: `[{stage: 11, actions: [{remote_address: {}}]}]`, want: "rate_limits[0].stage: 11 is above 10"},
		{name: "source cluster", yaml: `[{actions: [{source_cluster: {}}]}]`, want: "action_specifier: *routev3.RateLimit_Action_SourceCluster_ not supported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ra := &routev3.RouteAction{}
			if err := decode.Unmarshal([]byte("{cluster: a, rate_limits: "+tc.yaml+"}"), ra); err != nil {
				t.Fatal(err)
			}
			_, err := CompileRateLimits(ra.GetRateLimits())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// BenchmarkRateLimitAppend builds a request's descriptors from three
// rate_limits entries into a reused buffer, as the local rate limit filter
// does per request.
func BenchmarkRateLimitAppend(b *testing.B) {
	rt := compileB(b, rateLimitTable).Routes[0]
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-User", "ann")
	in := &RateLimitInput{Request: r, RemoteAddr: "10.1.2.3:5555", Cluster: "app"}
	buf := make([]ratelimit.Entry, 0, 16)
	rls := rt.RateLimits[:4]
	b.ReportAllocs()
	for b.Loop() {
		buf = buf[:0]
		for i := range rls {
			buf, _ = rls[i].Append(buf, in)
		}
	}
}

func compileB(b *testing.B, y string) *Table {
	rc := &routev3.RouteConfiguration{}
	if err := decode.Unmarshal([]byte(y), rc); err != nil {
		b.Fatal(err)
	}
	tab, err := Compile(rc)
	if err != nil {
		b.Fatal(err)
	}
	return tab
}
