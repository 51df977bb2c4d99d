package proxy_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

const faultConfig = `
` + webListener + `          access_log: [{name: f, typed_config: {"@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: "{{.Log}}"}}]
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: "/", grpc: {}}
                route: {cluster: h2, timeout: 0s}
                typed_per_filter_config:
                  envoy.filters.http.fault:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
                    abort: {grpc_status: 14, percentage: {numerator: 100}}
              - match: {prefix: "/healthy"}
                route: {cluster: app}
                typed_per_filter_config:
                  envoy.filters.http.fault:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
              - match: {prefix: "/"}
                route: {cluster: app}
          http_filters:
          - name: envoy.filters.http.fault
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
              abort: {http_status: 418, percentage: {numerator: 100}}
              delay: {header_delay: {}, percentage: {numerator: 100}}
              headers: [{name: x-chaos, present_match: true}]
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: app
    load_assignment: {cluster_name: app, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .Echo}}}}]}]}
  - name: h2
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment: {cluster_name: h2, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .Echo}}}}]}]}
`

func TestFaultInjection(t *testing.T) {
	e := startEcho(t, "e")
	logPath := filepath.Join(t.TempDir(), "access.log")
	p := startProxy(t, faultConfig, map[string]string{"Echo": e.Addr(), "Log": logPath})
	base := "http://" + p.ListenerAddrs()["web"]
	t.Run("requests without the header pass", func(t *testing.T) {
		if resp, _, _ := get(t, http.DefaultClient, base+"/", nil); resp.StatusCode != 200 {
			t.Fatalf("got %d", resp.StatusCode)
		}
	})
	t.Run("abort and header-controlled delay", func(t *testing.T) {
		resp, _, body := get(t, http.DefaultClient, base+"/", map[string]string{"X-Chaos": "1", "X-Envoy-Fault-Delay-Request": "50"})
		if resp.StatusCode != 418 || resp.Header.Get("X-Trellis-Reason") != "fault_abort" {
			t.Fatalf("%d %q %q", resp.StatusCode, resp.Header.Get("X-Trellis-Reason"), body)
		}
		log, _ := os.ReadFile(logPath)
		if !bytes.Contains(log, []byte(`"response_flags":"DI,FI"`)) {
			t.Fatalf("access log:\n%s", log)
		}
	})
	t.Run("an empty per-route override disables the faults", func(t *testing.T) {
		if resp, _, _ := get(t, http.DefaultClient, base+"/healthy", map[string]string{"X-Chaos": "1"}); resp.StatusCode != 200 {
			t.Fatalf("got %d", resp.StatusCode)
		}
	})
	t.Run("gRPC abort status per route", func(t *testing.T) {
		conn, err := grpc.NewClient(p.ListenerAddrs()["web"], grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, err = grpc_testing.NewTestServiceClient(conn).UnaryCall(t.Context(), &grpc_testing.SimpleRequest{})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("got %v", err)
		}
	})
}
