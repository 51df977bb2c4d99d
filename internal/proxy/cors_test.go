package proxy_test

import (
	"net/http"
	"testing"
)

const corsConfig = `
` + webListener + `          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: "/api"}
                route: {cluster: app}
                typed_per_filter_config:
                  envoy.filters.http.cors:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
                    allow_origin_string_match: [{suffix: ".example.com"}]
                    allow_methods: "GET, PUT"
                    allow_headers: "x-token"
                    expose_headers: "x-echo-name"
                    max_age: "600"
                    allow_credentials: true
              - match: {prefix: "/"}
                route: {cluster: app}
          http_filters:
          - name: envoy.filters.http.cors
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors}
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: app
    load_assignment: {cluster_name: app, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .}}}}]}]}
`

func TestCORS(t *testing.T) {
	e := startEcho(t, "e")
	p := startProxy(t, corsConfig, e.Addr())
	base := "http://" + p.ListenerAddrs()["web"]
	do := func(method, path string, hdr map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	t.Run("preflight from an allowed origin is answered by the proxy", func(t *testing.T) {
		resp := do("OPTIONS", "/api/x", map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "PUT"})
		h := resp.Header
		if resp.StatusCode != 200 || h.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
			h.Get("Access-Control-Allow-Methods") != "GET, PUT" || h.Get("Access-Control-Max-Age") != "600" ||
			h.Get("Access-Control-Allow-Credentials") != "true" || h.Get("X-Echo-Name") != "" {
			t.Fatalf("%d %v", resp.StatusCode, h)
		}
	})
	t.Run("actual request gets the CORS headers", func(t *testing.T) {
		resp := do("GET", "/api/x", map[string]string{"Origin": "https://app.example.com"})
		if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
			resp.Header.Get("Access-Control-Expose-Headers") != "x-echo-name" || resp.Header.Get("X-Echo-Name") != "e" {
			t.Fatalf("%v", resp.Header)
		}
	})
	t.Run("other origins and routes without a policy get none", func(t *testing.T) {
		for _, tc := range []struct{ path, origin string }{{"/api/x", "https://evil.org"}, {"/plain", "https://app.example.com"}} {
			resp := do("GET", tc.path, map[string]string{"Origin": tc.origin})
			if resp.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Fatalf("%s from %s: %v", tc.path, tc.origin, resp.Header)
			}
		}
	})
}
