package ads_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/template"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/trellis-mesh/trellis/internal/identity/certclient"
	"github.com/trellis-mesh/trellis/internal/identity/certclient/signtest"
	"github.com/trellis-mesh/trellis/internal/identity/rotate"
	"github.com/trellis-mesh/trellis/internal/proxy"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
	"github.com/trellis-mesh/trellis/internal/xds/ads"
	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

// The mesh of the mutual TLS tests.
const (
	testMesh     = "shop"
	clientID     = "spiffe://shop.trellis.local/shop/client"
	serverID     = "spiffe://shop.trellis.local/shop/server"
	bundleSecret = "trellis-trust-bundle"
)

// inboundYAML is the server sidecar's inbound listener as the translator
// emits it for a STRICT mesh: TLS 1.3, client certificate required, both
// secrets over SDS, and RBAC admitting only the client's identity (so a
// 200 proves the server sidecar saw the client's SPIFFE ID).
const inboundYAML = `
name: inbound
address: {socket_address: {address: 127.0.0.1, port_value: 0}}
filter_chains:
- transport_socket:
    name: envoy.transport_sockets.tls
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
      require_client_certificate: true
      common_tls_context:
        tls_params: {tls_minimum_protocol_version: TLSv1_3}
        alpn_protocols: [h2, http/1.1]
        tls_certificate_sds_secret_configs: [{name: trellis-identity, sds_config: {ads: {}}}]
        validation_context_sds_secret_config: {name: trellis-trust-bundle, sds_config: {ads: {}}}
  filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: inbound
      route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: app}}]}]}
      http_filters:
      - name: envoy.filters.http.rbac
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
          rules:
            action: ALLOW
            policies:
              allow-client:
                permissions: [{any: true}]
                principals: [{authenticated: {principal_name: {exact: "` + clientID + `"}}}]
      - {name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
`

const appClusterYAML = `
name: app
connect_timeout: 1s
load_assignment: {cluster_name: app, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {{.}}}}}}]}]}
`

// outboundYAML is the client sidecar's plaintext listener for its app.
const outboundYAML = `
name: outbound
address: {socket_address: {address: 127.0.0.1, port_value: 0}}
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: outbound
      route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: server}}]}]}
      http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
`

// serverClusterYAML is the client sidecar's cluster to the server
// sidecar: HTTP/2 over TLS 1.3, its own certificate, and the server's
// identity checked against the trust bundle.
const serverClusterYAML = `
name: server
connect_timeout: 1s
load_assignment: {cluster_name: server, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {{.}}}}}}]}]}
typed_extension_protocol_options:
  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
    "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
    explicit_http_config: {http2_protocol_options: {}}
transport_socket:
  name: envoy.transport_sockets.tls
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
    sni: server.default.shop.trellis
    common_tls_context:
      tls_params: {tls_minimum_protocol_version: TLSv1_3}
      alpn_protocols: [h2]
      tls_certificate_sds_secret_configs: [{name: trellis-identity, sds_config: {ads: {}}}]
      combined_validation_context:
        default_validation_context: {match_typed_subject_alt_names: [{san_type: URI, matcher: {exact: "` + serverID + `"}}]}
        validation_context_sds_secret_config: {name: trellis-trust-bundle, sds_config: {ads: {}}}
`

func fromYAML[M any, PM interface {
	*M
	types.Resource
}](t testing.TB, tmpl string, data any) PM {
	t.Helper()
	var buf bytes.Buffer
	if err := template.Must(template.New("").Parse(tmpl)).Execute(&buf, data); err != nil {
		t.Fatal(err)
	}
	m := PM(new(M))
	if err := decode.Unmarshal(buf.Bytes(), m); err != nil {
		t.Fatal(err)
	}
	return m
}

// bundle is the trellis-trust-bundle Secret of the mesh.
func bundle(s *signtest.Server) *tlsv3.Secret {
	return &tlsv3.Secret{Name: bundleSecret, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: s.CA.Bundle().PEM()}}}}}
}

func snapshotOf(t testing.TB, version string, ls []types.Resource, cs []types.Resource, secrets ...types.Resource) *cachev3.Snapshot {
	t.Helper()
	s, err := cachev3.NewSnapshot(version, map[resource.Type][]types.Resource{
		resource.ListenerType: ls, resource.ClusterType: cs, resource.SecretType: secrets,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func serverSnapshot(t testing.TB, version string, sign *signtest.Server, appPort int) *cachev3.Snapshot {
	return snapshotOf(t, version,
		[]types.Resource{fromYAML[listenerv3.Listener](t, inboundYAML, nil)},
		[]types.Resource{fromYAML[clusterv3.Cluster](t, appClusterYAML, appPort)},
		bundle(sign))
}

func clientSnapshot(t testing.TB, version string, sign *signtest.Server, inboundPort int) *cachev3.Snapshot {
	return snapshotOf(t, version,
		[]types.Resource{fromYAML[listenerv3.Listener](t, outboundYAML, nil)},
		[]types.Resource{fromYAML[clusterv3.Cluster](t, serverClusterYAML, inboundPort)},
		bundle(sign))
}

// logBuffer collects a sidecar's logs.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
	t  *testing.T
}

func (w *logBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if testing.Verbose() {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return w.b.Write(p)
}

func (w *logBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// sidecar is a real proxy fed by an ADS client, with its certificate
// obtained with a dataplane token and rotated as proxycmd does.
type sidecar struct {
	*proxy.Proxy
	logs      *logBuffer
	rotations atomic.Int64
	rot       *rotate.Rotator
}

func startSidecar(t *testing.T, cpAddr string, node *corev3.Node, sign *signtest.Server, tok string) *sidecar {
	t.Helper()
	sc := &sidecar{logs: &logBuffer{t: t}}
	log := slog.New(slog.NewTextHandler(sc.logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", node.GetId())
	sc.Proxy = proxy.New(proxy.Options{Logger: log, DrainTimeout: 5 * time.Second})
	if err := sc.StartAdmin("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	c, err := ads.New(ads.Options{Address: cpAddr, Node: node, Proxy: sc.Proxy, Backoff: fastBackoff,
		Metrics: metrics.NewXDS(sc.Metrics()), Logger: log, Base: adminBootstrap(t), Identity: true})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(sign.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	mesh, service := ads.DataplaneIdentity(node)
	cc, err := certclient.New(certclient.Options{Conn: conn, Token: func() (string, error) { return tok, nil },
		Mesh: mesh, Service: service, Node: node.GetId(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	sc.rot, err = rotate.New(rotate.Options{Renew: cc.Renew, Logger: log, MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
		OnRotate: func(cert *tls.Certificate) {
			sc.rotations.Add(1)
			c.SetIdentity(cert)
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := c.Run(ctx); err != nil {
			t.Errorf("ads Run: %v", err)
		}
	}()
	go func() { defer wg.Done(); _ = sc.rot.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		conn.Close()
		sc.Shutdown(context.Background())
	})
	return sc
}

// waitFor polls cond until it holds or 15 seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// port returns the port of a listener of p.
func port(t *testing.T, p *proxy.Proxy, listener string) int {
	t.Helper()
	var addr string
	waitFor(t, "listener "+listener, func() bool { addr = p.ListenerAddrs()[listener]; return addr != "" })
	_, ps, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	fmt.Sscan(ps, &n)
	return n
}

// peerCertificate completes a TLS 1.3 handshake with addr presenting
// cert and returns the leaf the server presented.
func handshake(addr string, cert *tls.Certificate, protos ...string) (*tls.Conn, error) {
	cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13, NextProtos: protos} //nolint:gosec // the test inspects the peer itself
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	return tls.DialWithDialer(d, "tcp", addr, cfg)
}

// runProxyLogged is runProxy without a token, logging to logs.
func runProxyLogged(t *testing.T, addr string, node *corev3.Node, logs *logBuffer) *proxy.Proxy {
	t.Helper()
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p := proxy.New(proxy.Options{Logger: log, DrainTimeout: 5 * time.Second})
	if err := p.StartAdmin("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	c, err := ads.New(ads.Options{Address: addr, Node: node, Proxy: p, Backoff: fastBackoff, Logger: log, Base: adminBootstrap(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		p.Shutdown(context.Background())
	})
	return p
}
