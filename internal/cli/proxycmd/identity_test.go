package proxycmd

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"

	"github.com/trellis-mesh/trellis/internal/identity/certclient/signtest"
	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

// inbound is a STRICT mTLS listener answering 204 locally.
const inbound = `
name: inbound
address: {socket_address: {address: 127.0.0.1, port_value: 0}}
filter_chains:
- transport_socket:
    name: envoy.transport_sockets.tls
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
      require_client_certificate: true
      common_tls_context:
        tls_certificate_sds_secret_configs: [{name: trellis-identity, sds_config: {ads: {}}}]
        validation_context_sds_secret_config: {name: trellis-trust-bundle, sds_config: {ads: {}}}
  filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: inbound
      route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, direct_response: {status: 204}}]}]}
      http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
`

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestTokenFileObtainsCertificate: `trellis-proxy --token-file` against a
// control plane serving ADS and the certificate service on one port: the
// proxy gets its certificate, applies the mTLS listener, becomes ready,
// presents its SPIFFE ID, and exits 0 on cancel.
func TestTokenFileObtainsCertificate(t *testing.T) {
	srv := grpc.NewServer()
	cache := cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(srv, serverv3.NewServer(context.Background(), cache, nil))
	sign := signtest.Start(t, signtest.Options{Mesh: "shop", Register: srv})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)

	l := &listenerv3.Listener{}
	if err := decode.Unmarshal([]byte(inbound), l); err != nil {
		t.Fatal(err)
	}
	bundle := &tlsv3.Secret{Name: "trellis-trust-bundle", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: sign.CA.Bundle().PEM()}}}}}
	snap, err := cachev3.NewSnapshot("1", map[resource.Type][]types.Resource{
		resource.ListenerType: {l}, resource.ClusterType: {}, resource.SecretType: {bundle}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.SetSnapshot(context.Background(), "default/web", snap); err != nil {
		t.Fatal(err)
	}
	tok, _ := sign.Token(t, "web")
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- Main(ctx, []string{"--control-plane", ln.Addr().String(), "--node-id", "default/web", "--mesh", "shop",
			"--token-file", tokenFile, "--admin-address", "127.0.0.1:0", "--drain-timeout", "1s"}, &out, &errOut)
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-exit; code != 0 {
			t.Errorf("exit %d; stderr:\n%s", code, errOut.String())
		}
	})
	find := func(re *regexp.Regexp) string {
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			if m := re.FindStringSubmatch(out.String()); m != nil {
				return m[1]
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("stdout never matched %s:\n%s\nstderr:\n%s", re, out.String(), errOut.String())
		return ""
	}
	admin := find(regexp.MustCompile(`admin listening on (\S+)`))
	addr := find(regexp.MustCompile(`listener inbound listening on (\S+)`))
	resp, err := http.Get("http://" + admin + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/ready = %d", resp.StatusCode)
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the peer is what is checked
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := conn.ConnectionState().PeerCertificates[0].URIs[0].String(); got != "spiffe://shop.trellis.local/shop/web" {
		t.Errorf("the proxy presented %s", got)
	}
}
