package proxy_test

import (
	"net/http"
	"testing"
)

const headerMutationConfig = `
` + webListener + `          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: "/untouched"}
                route: {cluster: app}
                typed_per_filter_config:
                  envoy.filters.http.header_mutation:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutationPerRoute
                    mutations: {}
              - match: {prefix: "/"}
                route: {cluster: app}
          http_filters:
          - name: envoy.filters.http.header_mutation
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation
              mutations:
                request_mutations:
                - remove: x-secret
                - append: {header: {key: x-client, value: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"}}
                response_mutations:
                - remove_on_match: {key_matcher: {prefix: "X-Echo-"}}
                - append: {header: {key: x-served-by, value: trellis}}
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: app
    load_assignment: {cluster_name: app, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .}}}}]}]}
`

func TestHeaderMutationFilter(t *testing.T) {
	e := startEcho(t, "e")
	p := startProxy(t, headerMutationConfig, e.Addr())
	base := "http://" + p.ListenerAddrs()["web"]
	resp, er, _ := get(t, http.DefaultClient, base+"/x", map[string]string{"X-Secret": "s"})
	if er.Headers["X-Secret"] != nil || len(er.Headers["X-Client"]) != 1 || er.Headers["X-Client"][0] != "127.0.0.1" {
		t.Fatalf("request headers upstream: %v", er.Headers)
	}
	if resp.Header.Get("X-Echo-Name") != "" || resp.Header.Get("X-Served-By") != "trellis" {
		t.Fatalf("response headers: %v", resp.Header)
	}
	resp, er, _ = get(t, http.DefaultClient, base+"/untouched", map[string]string{"X-Secret": "s"})
	if er.Headers["X-Secret"] == nil || resp.Header.Get("X-Echo-Name") != "e" || resp.Header.Get("X-Served-By") != "" {
		t.Fatalf("route override did not disable the mutations: %v %v", er.Headers, resp.Header)
	}
}
