package proxy_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const timeoutConfig = `
` + webListener + `          access_log: [{name: f, typed_config: {"@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: "{{.Log}}"}}]
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: "/", grpc: {}}
                route: {cluster: h2, timeout: 30s, max_stream_duration: {grpc_timeout_header_max: 0.2s}}
              - match: {prefix: "/idle"}
                route: {cluster: h1, idle_timeout: 0.2s}
              - match: {prefix: "/duration"}
                route: {cluster: h1, timeout: 0s, max_stream_duration: {max_stream_duration: 0.3s}}
          ` + routerFilter + `
  clusters:
  - name: h1
    load_assignment: {cluster_name: h1, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .Echo}}}}]}]}
  - name: h2
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment: {cluster_name: h2, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .Echo}}}}]}]}
`

func TestTimeouts(t *testing.T) {
	e := startEcho(t, "e")
	logPath := filepath.Join(t.TempDir(), "access.log")
	p := startProxy(t, timeoutConfig, map[string]string{"Echo": e.Addr(), "Log": logPath})
	base := "http://" + p.ListenerAddrs()["web"]

	t.Run("route idle_timeout", func(t *testing.T) {
		resp, _, body := get(t, http.DefaultClient, base+"/idle?delay=10s", nil)
		if resp.StatusCode != 504 || resp.Header.Get("X-Trellis-Reason") != "stream_idle_timeout" {
			t.Fatalf("%d %q %q", resp.StatusCode, resp.Header.Get("X-Trellis-Reason"), body)
		}
	})
	t.Run("max_stream_duration", func(t *testing.T) {
		resp, _, body := get(t, http.DefaultClient, base+"/duration?delay=10s", nil)
		if resp.StatusCode != 504 || resp.Header.Get("X-Trellis-Reason") != "max_stream_duration" {
			t.Fatalf("%d %q %q", resp.StatusCode, resp.Header.Get("X-Trellis-Reason"), body)
		}
	})
	t.Run("grpc-timeout header bounds the upstream call", func(t *testing.T) {
		conn, err := grpc.NewClient(p.ListenerAddrs()["web"], grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// The client sends grpc-timeout for a 30 s deadline; the route caps
		// it at 200 ms (grpc_timeout_header_max), so the proxy, not the
		// client, ends the call, which its access log shows as UT.
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		ctx = metadata.AppendToOutgoingContext(ctx, "x-echo-delay", "60s")
		_, err = grpc_testing.NewTestServiceClient(conn).UnaryCall(ctx, &grpc_testing.SimpleRequest{})
		if status.Code(err) != codes.DeadlineExceeded || ctx.Err() != nil {
			t.Fatalf("got %v (client deadline passed: %v)", err, ctx.Err())
		}
		log, _ := os.ReadFile(logPath)
		if !bytes.Contains(log, []byte(`"response_flags":"UT"`)) {
			t.Fatalf("access log:\n%s", log)
		}
	})
}
