package proxy_test

import (
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/trellis-mesh/trellis/internal/echo"
	"github.com/trellis-mesh/trellis/internal/testutil/certs"
)

type tlsData struct {
	CA, Cert, Key   string
	ClientCert      string
	ClientKey       string
	Echo, Upstream  string
	ServerSAN       string
	ClientSAN       string
	EchoA, EchoB    string
	ListenerAddress string
}

// sidecarB terminates mutual TLS (client SAN checked) and forwards to echo.
const sidecarB = `
static_resources:
  listeners:
  - name: inbound
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            alpn_protocols: [h2, http/1.1]
            tls_params: {tls_minimum_protocol_version: TLSv1_3}
            tls_certificates: [{certificate_chain: {filename: "{{.Cert}}"}, private_key: {filename: "{{.Key}}"}}]
            validation_context:
              trusted_ca: {filename: "{{.CA}}"}
              match_typed_subject_alt_names: [{san_type: URI, matcher: {exact: "{{.ClientSAN}}"}}]
      filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: inbound
          route_config:
            response_headers_to_add: [{header: {key: x-b-downstream-proto, value: "%PROTOCOL%"}}]
            virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: app}}]}]
          ` + routerFilter + `
  clusters:
  - name: app
    load_assignment: {cluster_name: app, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .Echo}}}}]}]}
`

// sidecarA takes plain HTTP/1.1 from the app and sends it to B over HTTP/2
// with mutual TLS, checking B's SAN.
const sidecarA = `
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources:
  listeners:
  - name: outbound
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: outbound
          route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: b}}]}]}
          ` + routerFilter + `
  secrets:
  - name: client-cert
    tls_certificate: {certificate_chain: {filename: "{{.ClientCert}}"}, private_key: {filename: "{{.ClientKey}}"}}
  clusters:
  - name: b
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: b.mesh
        common_tls_context:
          tls_certificate_sds_secret_configs: [{name: client-cert}]
          validation_context:
            trusted_ca: {filename: "{{.CA}}"}
            match_typed_subject_alt_names: [{san_type: URI, matcher: {exact: "{{.ServerSAN}}"}}]
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment: {cluster_name: b, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .Upstream}}}}]}]}
`

func TestMutualTLSSidecarPair(t *testing.T) {
	ca := certs.NewCA(t, "mesh-ca")
	srv := ca.Issue(t, certs.LeafOptions{CommonName: "b", URIs: []string{"spiffe://mesh.test/b"}, DNSNames: []string{"b.mesh"}})
	cli := ca.Issue(t, certs.LeafOptions{CommonName: "a", URIs: []string{"spiffe://mesh.test/a"}})
	e := startEcho(t, "app-b")
	d := tlsData{CA: ca.File(), Cert: srv.CertFile, Key: srv.KeyFile, ClientCert: cli.CertFile, ClientKey: cli.KeyFile,
		Echo: e.Addr(), ServerSAN: "spiffe://mesh.test/b", ClientSAN: "spiffe://mesh.test/a"}
	b := startProxy(t, sidecarB, d)
	d.Upstream = b.ListenerAddrs()["inbound"]
	a := startProxy(t, sidecarA, d)
	base := "http://" + a.ListenerAddrs()["outbound"]

	t.Run("request crosses the pair", func(t *testing.T) {
		resp, er, body := get(t, http.DefaultClient, base+"/hello", nil)
		if resp.StatusCode != 200 || er.Name != "app-b" || er.Path != "/hello" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
		if er.Proto != "HTTP/1.1" {
			t.Errorf("last hop %s", er.Proto)
		}
		if p := resp.Header.Get("X-B-Downstream-Proto"); p != "HTTP/2.0" {
			t.Errorf("A→B hop used %q, want HTTP/2.0", p)
		}
		m := scrape(t, a.AdminAddr())
		if v := metricValue(m, `trellis_cluster_upstream_requests_total{cluster="b",code="200"}`); v < 1 {
			t.Errorf("no 200 counted for cluster b")
		}
	})
	t.Run("B refuses a client without a certificate", func(t *testing.T) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "b.mesh"}}}
		_, err := c.Get("https://" + d.Upstream + "/")
		if err == nil {
			t.Fatal("request without client certificate succeeded")
		}
	})
	t.Run("B refuses a client with another identity", func(t *testing.T) {
		other := ca.Issue(t, certs.LeafOptions{CommonName: "c", URIs: []string{"spiffe://mesh.test/c"}})
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "b.mesh", Certificates: []tls.Certificate{other.TLS}}}}
		resp, err := c.Get("https://" + d.Upstream + "/")
		if err == nil {
			resp.Body.Close()
			t.Fatalf("client with SAN spiffe://mesh.test/c got %d", resp.StatusCode)
		}
	})
	t.Run("A fails closed when B has the wrong identity", func(t *testing.T) {
		d2 := d
		d2.ServerSAN = "spiffe://mesh.test/someone-else"
		a2 := startProxy(t, sidecarA, d2)
		resp, _, body := get(t, http.DefaultClient, "http://"+a2.ListenerAddrs()["outbound"]+"/", nil)
		if resp.StatusCode != 503 || resp.Header.Get("X-Trellis-Reason") != "upstream_connect_failure" {
			t.Fatalf("%d %q %q", resp.StatusCode, resp.Header.Get("X-Trellis-Reason"), body)
		}
	})
}

// passthrough routes TLS by SNI to two TLS backends without terminating.
const passthrough = `
static_resources:
  listeners:
  - name: sni
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    listener_filters:
    - name: envoy.filters.listener.tls_inspector
      typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}
    filter_chains:
    - filter_chain_match: {server_names: ["a.test"]}
      filters: [{name: tcp, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: a, cluster: a}}]
    - filter_chain_match: {server_names: ["*.b.test"]}
      filters: [{name: tcp, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: b, cluster: b}}]
  clusters:
  - name: a
    load_assignment: {cluster_name: a, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .EchoA}}}}]}]}
  - name: b
    load_assignment: {cluster_name: b, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .EchoB}}}}]}]}
`

func TestTLSPassthroughBySNI(t *testing.T) {
	ca := certs.NewCA(t, "ca")
	leaf := ca.Issue(t, certs.LeafOptions{CommonName: "echo", DNSNames: []string{"a.test", "x.b.test"}})
	withTLS := func(o *echo.Options) { o.TLSCertFile, o.TLSKeyFile = leaf.CertFile, leaf.KeyFile }
	ea, eb := startEcho(t, "tls-a", withTLS), startEcho(t, "tls-b", withTLS)
	p := startProxy(t, passthrough, tlsData{EchoA: ea.Addr(), EchoB: eb.Addr()})
	addr := p.ListenerAddrs()["sni"]
	for _, tc := range []struct{ sni, want string }{{"a.test", "tls-a"}, {"x.b.test", "tls-b"}} {
		c := &http.Client{Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: ca.Pool(), ServerName: tc.sni},
			ForceAttemptHTTP2: true,
		}}
		resp, er, _ := get(t, c, "https://"+addr+"/", map[string]string{"Host": tc.sni})
		if er.Name != tc.want || resp.ProtoMajor != 2 {
			t.Errorf("SNI %s reached %q over %s", tc.sni, er.Name, resp.Proto)
		}
		c.CloseIdleConnections()
	}
	// No chain matches an unknown name: the connection is closed.
	conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "c.test", InsecureSkipVerify: true})
	if err == nil {
		_, err = io.ReadAll(conn)
		conn.Close()
	}
	if err == nil {
		t.Fatal("a TLS connection with an unmatched SNI was served")
	}
}

// TestTCPProxy sends raw bytes through tcp_proxy, half-closing.
func TestTCPProxy(t *testing.T) {
	e := startEcho(t, "tcp", func(o *echo.Options) { o.TCPAddr = "127.0.0.1:0" })
	p := startProxy(t, `
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources:
  listeners:
  - name: tcp
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains: [{filters: [{name: tcp, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: raw, weighted_clusters: {clusters: [{name: echo, weight: 1}]}}}]}]
  clusters:
  - name: echo
    load_assignment: {cluster_name: echo, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .}}}}]}]}
`, e.TCPAddr())
	conn, err := dialTCP(p.ListenerAddrs()["tcp"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msg := strings.Repeat("0123456789", 100000)
	go func() {
		_, _ = io.WriteString(conn, msg)
		_ = conn.CloseWrite()
	}()
	got, err := io.ReadAll(conn)
	if err != nil || string(got) != msg {
		t.Fatalf("echoed %d of %d bytes: %v", len(got), len(msg), err)
	}
	m := scrape(t, p.AdminAddr())
	if v := metricValue(m, `trellis_tcp_bytes_total{direction="upstream",stat_prefix="raw"}`); v != float64(len(msg)) {
		t.Errorf("upstream bytes metric %v, want %d", v, len(msg))
	}
}

// TestTCPProxyOriginatesTLS: a tcp_proxy to a cluster with an upstream TLS
// context speaks TLS upstream (with the SAN check) while the client speaks
// plaintext.
func TestTCPProxyOriginatesTLS(t *testing.T) {
	ca := certs.NewCA(t, "ca")
	leaf := ca.Issue(t, certs.LeafOptions{CommonName: "echo", DNSNames: []string{"echo.test"}})
	e := startEcho(t, "tls-echo", func(o *echo.Options) { o.TLSCertFile, o.TLSKeyFile = leaf.CertFile, leaf.KeyFile })
	p := startProxy(t, `
static_resources:
  listeners:
  - name: tcp
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains: [{filters: [{name: tcp, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: raw, cluster: secure}}]}]
  clusters:
  - name: secure
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: echo.test
        common_tls_context:
          alpn_protocols: [http/1.1]
          validation_context:
            trusted_ca: {filename: "{{.CA}}"}
            match_typed_subject_alt_names: [{san_type: DNS, matcher: {exact: echo.test}}]
    load_assignment: {cluster_name: secure, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .Echo}}}}]}]}
`, map[string]string{"CA": ca.File(), "Echo": e.Addr()})
	c := &http.Client{}
	defer c.CloseIdleConnections()
	resp, er, body := get(t, c, "http://"+p.ListenerAddrs()["tcp"]+"/over-tls", nil)
	if resp.StatusCode != 200 || er.Name != "tls-echo" || er.Path != "/over-tls" || !er.TLS {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
}
