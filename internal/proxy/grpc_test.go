package proxy_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const h2Config = `
` + webListener + `          upgrade_configs: [{upgrade_type: websocket}, {upgrade_type: x-raw}]
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: "/nope.Service/"}
                route: {cluster: missing-host}
              - match: {prefix: "/", grpc: {}}
                route: {cluster: h2, timeout: 0s}
              - match: {prefix: "/ws"}
                route: {cluster: h1}
              - match: {prefix: "/raw-denied"}
                route: {cluster: h1, upgrade_configs: [{upgrade_type: x-raw, enabled: false}]}
              - match: {prefix: "/"}
                route: {cluster: h2}
          ` + routerFilter + `
  clusters:
  - name: h2
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment: {cluster_name: h2, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .}}}}]}]}
  - name: h1
    load_assignment: {cluster_name: h1, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .}}}}]}]}
  - name: missing-host
`

func TestGRPC(t *testing.T) {
	e := startEcho(t, "grpc-echo")
	p := startProxy(t, h2Config, e.Addr())
	conn, err := grpc.NewClient(p.ListenerAddrs()["web"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := grpc_testing.NewTestServiceClient(conn)
	ctx := t.Context()

	t.Run("unary with headers and trailers", func(t *testing.T) {
		var hdr, trl metadata.MD
		resp, err := c.UnaryCall(ctx, &grpc_testing.SimpleRequest{ResponseSize: 1000}, grpc.Header(&hdr), grpc.Trailer(&trl))
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetPayload().GetBody()) != 1000 {
			t.Errorf("payload %d bytes", len(resp.GetPayload().GetBody()))
		}
		if hdr.Get("x-echo-name")[0] != "grpc-echo" && trl.Get("x-echo-name")[0] != "grpc-echo" {
			t.Errorf("metadata lost: %v %v", hdr, trl)
		}
	})
	t.Run("status preserved", func(t *testing.T) {
		_, err := c.UnaryCall(ctx, &grpc_testing.SimpleRequest{ResponseStatus: &grpc_testing.EchoStatus{Code: int32(codes.ResourceExhausted), Message: "slow down"}})
		if status.Code(err) != codes.ResourceExhausted || status.Convert(err).Message() != "slow down" {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("server streaming", func(t *testing.T) {
		var params []*grpc_testing.ResponseParameters
		for range 50 {
			params = append(params, &grpc_testing.ResponseParameters{Size: 100})
		}
		st, err := c.StreamingOutputCall(ctx, &grpc_testing.StreamingOutputCallRequest{ResponseParameters: params})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			_, err := st.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != 50 {
			t.Fatalf("%d messages", n)
		}
	})
	t.Run("client streaming", func(t *testing.T) {
		st, err := c.StreamingInputCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for range 20 {
			if err := st.Send(&grpc_testing.StreamingInputCallRequest{Payload: &grpc_testing.Payload{Body: make([]byte, 500)}}); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := st.CloseAndRecv()
		if err != nil || resp.GetAggregatedPayloadSize() != 10000 {
			t.Fatalf("%v %v", resp, err)
		}
	})
	t.Run("bidirectional ping-pong", func(t *testing.T) {
		st, err := c.FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			if err := st.Send(&grpc_testing.StreamingOutputCallRequest{ResponseParameters: []*grpc_testing.ResponseParameters{{Size: int32(i + 1)}}}); err != nil {
				t.Fatal(err)
			}
			m, err := st.Recv()
			if err != nil || len(m.GetPayload().GetBody()) != i+1 {
				t.Fatalf("round %d: %v", i, err)
			}
		}
		st.CloseSend()
		if _, err := st.Recv(); err != io.EOF {
			t.Fatalf("end: %v", err)
		}
	})
	t.Run("health", func(t *testing.T) {
		r, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("%v %v", r, err)
		}
	})
	t.Run("local reply is a gRPC status", func(t *testing.T) {
		err := conn.Invoke(ctx, "/nope.Service/Call", &grpc_testing.Empty{}, &grpc_testing.Empty{})
		if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "no healthy upstream") {
			t.Fatalf("got %v", err)
		}
	})
}

// TestHTTP2Bridging: HTTP/1.1 clients reach an HTTP/2 upstream and h2c
// clients reach an HTTP/1.1 upstream.
func TestHTTP2Bridging(t *testing.T) {
	e := startEcho(t, "e")
	p := startProxy(t, h2Config, e.Addr())
	base := "http://" + p.ListenerAddrs()["web"]
	_, er, _ := get(t, http.DefaultClient, base+"/x", nil)
	if er.Proto != "HTTP/2.0" {
		t.Errorf("HTTP/1.1 client: upstream saw %q, want HTTP/2.0", er.Proto)
	}
	var ps http.Protocols
	ps.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Transport: &http.Transport{Protocols: &ps}}
	defer h2c.CloseIdleConnections()
	resp, er, _ := get(t, h2c, base+"/ws-not-upgrade", nil)
	if resp.ProtoMajor != 2 || er.Proto != "HTTP/1.1" {
		t.Errorf("h2c client: downstream %s, upstream saw %q", resp.Proto, er.Proto)
	}
}

func TestUpgrades(t *testing.T) {
	e := startEcho(t, "e")
	p := startProxy(t, h2Config, e.Addr())
	addr := p.ListenerAddrs()["web"]

	t.Run("websocket", func(t *testing.T) {
		ws, err := websocket.Dial("ws://"+addr+"/ws", "", "http://localhost/")
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		for _, msg := range []string{"hello", strings.Repeat("x", 100000)} {
			if err := websocket.Message.Send(ws, msg); err != nil {
				t.Fatal(err)
			}
			var got string
			if err := websocket.Message.Receive(ws, &got); err != nil || got != msg {
				t.Fatalf("echo of %d bytes: %d bytes, %v", len(msg), len(got), err)
			}
		}
	})
	raw := func(t *testing.T, path string) (string, net.Conn) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_, _ = io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: x-raw\r\n\r\n")
		buf := make([]byte, 4096)
		n, _ := c.Read(buf)
		return string(buf[:n]), c
	}
	t.Run("generic upgrade tunnel", func(t *testing.T) {
		head, c := raw(t, "/ws/raw")
		if !strings.HasPrefix(head, "HTTP/1.1 101") {
			t.Fatalf("got %q", head)
		}
		_, _ = io.WriteString(c, "ping-through-tunnel")
		buf := make([]byte, 64)
		n, err := io.ReadAtLeast(c, buf, len("ping-through-tunnel"))
		if err != nil || string(buf[:n]) != "ping-through-tunnel" {
			t.Fatalf("tunnel echo %q %v", buf[:n], err)
		}
	})
	t.Run("upgrade disabled on route", func(t *testing.T) {
		head, _ := raw(t, "/raw-denied")
		if !strings.HasPrefix(head, "HTTP/1.1 403") || !strings.Contains(head, "upgrade_not_allowed") {
			t.Fatalf("got %q", head)
		}
	})
}
