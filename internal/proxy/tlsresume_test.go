package proxy_test

import (
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/internal/testutil/certs"
)

// sidecarAIdle is sidecarA with a short upstream idle timeout, so that
// every request after a pause opens a new connection to B, and an optional
// max_session_keys.
const sidecarAIdle = `
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
  clusters:
  - name: b
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: b.mesh
        {{if .Keys}}max_session_keys: {{.Keys}}{{end}}
        common_tls_context:
          tls_params: {tls_minimum_protocol_version: TLSv1_3}
          tls_certificates: [{certificate_chain: {filename: "{{.ClientCert}}"}, private_key: {filename: "{{.ClientKey}}"}}]
          validation_context:
            trusted_ca: {filename: "{{.CA}}"}
            match_typed_subject_alt_names: [{san_type: URI, matcher: {exact: "{{.ServerSAN}}"}}]
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        common_http_protocol_options: {idle_timeout: 0.05s}
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment: {cluster_name: b, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .Upstream}}}}]}]}
`

// TestSidecarPairResumesTLS checks that sidecar A resumes its TLS session
// with sidecar B on a new connection (unless max_session_keys is 0), and
// that B, which verifies A's SAN, accepts the resumed connection. A relay
// between the two reads B's ServerHello: TLS 1.3 resumption is a
// ServerHello carrying the pre_shared_key extension.
func TestSidecarPairResumesTLS(t *testing.T) {
	ca := certs.NewCA(t, "mesh-ca")
	srv := ca.Issue(t, certs.LeafOptions{URIs: []string{"spiffe://mesh.test/b"}})
	cli := ca.Issue(t, certs.LeafOptions{URIs: []string{"spiffe://mesh.test/a"}})
	e := startEcho(t, "app-b")
	d := tlsData{CA: ca.File(), Cert: srv.CertFile, Key: srv.KeyFile, ClientCert: cli.CertFile, ClientKey: cli.KeyFile,
		Echo: e.Addr(), ServerSAN: "spiffe://mesh.test/b", ClientSAN: "spiffe://mesh.test/a"}
	b := startProxy(t, sidecarB, d)

	for _, tc := range []struct {
		name, keys string
		resumed    bool
	}{
		{"default", "", true},
		{"max_session_keys 1", "1", true},
		{"max_session_keys 0", "0", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startHelloRelay(t, b.ListenerAddrs()["inbound"])
			a := startProxy(t, sidecarAIdle, struct {
				tlsData
				Keys string
			}{tlsData{CA: d.CA, ClientCert: d.ClientCert, ClientKey: d.ClientKey, ServerSAN: d.ServerSAN, Upstream: r.addr()}, tc.keys})
			url := "http://" + a.ListenerAddrs()["outbound"] + "/"
			for i := range 2 {
				resp, er, body := get(t, http.DefaultClient, url, nil)
				if resp.StatusCode != 200 || er.Name != "app-b" {
					t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
				}
				// A closes the idle connection after 50 ms; the next
				// request then needs a new one.
				r.waitClosed(t, i+1)
			}
			got := r.results()
			if len(got) != 2 {
				t.Fatalf("%d connections to B, want 2", len(got))
			}
			if got[0] {
				t.Error("first connection resumed a session it cannot have")
			}
			if got[1] != tc.resumed {
				t.Errorf("second connection resumed = %v, want %v", got[1], tc.resumed)
			}
		})
	}
}

// helloRelay forwards TCP connections to a TLS server and records, per
// connection, whether the server's ServerHello resumed a session.
type helloRelay struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	resumed []bool
	closed  int
	wg      sync.WaitGroup
}

func startHelloRelay(t *testing.T, target string) *helloRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &helloRelay{ln: ln, target: target}
	r.wg.Add(1)
	go r.serve()
	t.Cleanup(func() {
		ln.Close()
		r.wg.Wait()
	})
	return r
}

func (r *helloRelay) addr() string { return r.ln.Addr().String() }

func (r *helloRelay) serve() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.wg.Add(1)
		go r.relay(c)
	}
}

func (r *helloRelay) relay(c net.Conn) {
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		r.closed++
		r.mu.Unlock()
	}()
	defer c.Close()
	up, err := net.Dial("tcp", r.target)
	if err != nil {
		return
	}
	defer up.Close()
	go func() {
		io.Copy(up, c)
		up.Close()
	}()
	// Read B's first record (the ServerHello) whole, then forward it and
	// the rest.
	var hdr [5]byte
	if _, err := io.ReadFull(up, hdr[:]); err != nil {
		return
	}
	rec := make([]byte, 5+(int(hdr[3])<<8|int(hdr[4])))
	copy(rec, hdr[:])
	if _, err := io.ReadFull(up, rec[5:]); err != nil {
		return
	}
	r.mu.Lock()
	r.resumed = append(r.resumed, serverHelloHasPSK(rec))
	r.mu.Unlock()
	if _, err := c.Write(rec); err != nil {
		return
	}
	io.Copy(c, up)
}

// waitClosed waits until n relayed connections have ended.
func (r *helloRelay) waitClosed(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		r.mu.Lock()
		closed := r.closed
		r.mu.Unlock()
		if closed >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d connections to B closed after 5 s", closed, n)
		}
		time.Sleep(5 * time.Millisecond) // polling, with the deadline above
	}
}

func (r *helloRelay) results() []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bool(nil), r.resumed...)
}

// serverHelloHasPSK reports whether rec, one TLS record, is a ServerHello
// with the pre_shared_key extension (41, RFC 8446 §4.2.11): the server
// accepted a session the client offered.
func serverHelloHasPSK(rec []byte) bool {
	const handshake, serverHello, preSharedKey = 22, 2, 41
	if len(rec) < 9 || rec[0] != handshake || rec[5] != serverHello {
		return false
	}
	h := rec[9:] // after the record header and the handshake header
	// legacy_version (2), random (32), legacy_session_id_echo (1 + n),
	// cipher_suite (2), legacy_compression_method (1), extensions (2 + n).
	if len(h) < 35 {
		return false
	}
	h = h[34:]
	n := int(h[0])
	if len(h) < 1+n+3+2 {
		return false
	}
	h = h[1+n+3+2:]
	for len(h) >= 4 {
		typ, l := int(h[0])<<8|int(h[1]), int(h[2])<<8|int(h[3])
		if typ == preSharedKey {
			return true
		}
		if len(h) < 4+l {
			return false
		}
		h = h[4+l:]
	}
	return false
}
