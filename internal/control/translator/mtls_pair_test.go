package translator

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/trellis-mesh/trellis/internal/proxy"
	"github.com/trellis-mesh/trellis/internal/testutil/certs"
)

// pairYAML is a STRICT mesh where web calls backend, which only web may
// GET from and whose /admin is closed. Ports are 0: the test binds them.
const pairYAML = `
apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata: {name: default}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: backend}
spec:
  selector: {app: backend}
  ports: [{port: 9090, protocol: %s}]
---
apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: web-1, labels: {app: web}}
spec:
  address: 127.0.0.1
  outbound: [{service: backend, localPort: 0}]
---
apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: backend-1, labels: {app: backend}}
spec:
  address: 127.0.0.1
  inbound: [{port: 0, servicePort: 9090, appPort: %d}]
---
apiVersion: trellis.dev/v1alpha1
kind: AccessPolicy
metadata: {name: backend-callers}
spec:
  targetRefs: [{group: "", kind: Service, name: backend}]
  action: ALLOW
  rules: [{from: [{service: web}], to: [{methods: [GET]}]}]
---
apiVersion: trellis.dev/v1alpha1
kind: AccessPolicy
metadata: {name: no-admin}
spec:
  targetRefs: [{group: "", kind: Service, name: backend}]
  action: DENY
  rules: [{from: [{any: true}], to: [{paths: [{prefix: /admin}]}]}]
`

// withIdentity replaces the static secrets of b by the trust bundle of ca
// and a certificate of ca for id.
func withIdentity(t *testing.T, b *bootstrapv3.Bootstrap, ca *certs.CA, id string) {
	leaf := ca.Issue(t, certs.LeafOptions{URIs: []string{id}})
	for i, s := range b.StaticResources.Secrets {
		switch s.Name {
		case TrustBundleSecret:
			b.StaticResources.Secrets[i] = bundleSecret(ca.PEM())
		case IdentitySecret:
			b.StaticResources.Secrets[i] = &tlsv3.Secret{Name: IdentitySecret, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
				CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: leaf.CertPEM}},
				PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: leaf.KeyPEM}},
			}}}
		}
	}
}

func startProxy(t *testing.T, b *bootstrapv3.Bootstrap) *proxy.Proxy {
	t.Helper()
	p := proxy.New(proxy.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), DrainTimeout: time.Second})
	if err := p.Apply(b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	return p
}

// TestMTLSPairThroughProxies runs the translator's output for two
// sidecars in real proxies with certificates of one CA: the call goes
// over mutual TLS, the server sidecar sees the caller's identity (its
// ALLOW rule admits web), refusals name the policy, and a plaintext
// client reaching the STRICT inbound directly is refused.
func TestMTLSPairThroughProxies(t *testing.T) {
	for _, protocol := range []string{"http", "http2"} {
		t.Run(protocol, func(t *testing.T) { testPair(t, protocol, "backend") })
	}
	// A server whose certificate is not an identity serving backend: the
	// client sidecar refuses it (503), never falling back to plaintext.
	t.Run("impostor", func(t *testing.T) { testPair(t, "http", "impostor") })
}

func testPair(t *testing.T, protocol, backendIdentity string) {
	app := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s", r.Proto, r.Method, r.URL.Path)
	}))
	if protocol == "http2" {
		app.EnableHTTP2 = true
		app.Config.Protocols = new(http.Protocols)
		app.Config.Protocols.SetUnencryptedHTTP2(true)
	}
	app.Start()
	t.Cleanup(app.Close)
	_, appPort, _ := net.SplitHostPort(app.Listener.Addr().String())
	port, _ := strconv.Atoi(appPort)

	objs := decodeObjects(t, []byte(fmt.Sprintf(pairYAML, protocol, port)))
	idx := NewIndex(objs, testBundles)
	ca := certs.NewCA(t, "mesh default")
	translate := func(name string) *bootstrapv3.Bootstrap {
		res, err := Translate(idx, proxyFor(t, []byte("dataplane: "+name), objs))
		if err != nil {
			t.Fatal(err)
		}
		b := staticBootstrap(t, res)
		id := strings.TrimSuffix(name, "-1")
		if id == "backend" {
			id = backendIdentity
		}
		withIdentity(t, b, ca, "spiffe://default.trellis.local/default/"+id)
		return b
	}

	backend := startProxy(t, translate("backend-1"))
	inbound := backend.ListenerAddrs()["inbound:127.0.0.1:0"]
	if inbound == "" {
		t.Fatalf("no inbound listener: %v", backend.ListenerAddrs())
	}
	_, inPort, _ := net.SplitHostPort(inbound)
	wb := translate("web-1")
	for _, c := range wb.StaticResources.Clusters {
		for _, le := range c.GetLoadAssignment().GetEndpoints() {
			for _, e := range le.GetLbEndpoints() {
				p, _ := strconv.Atoi(inPort)
				e.GetEndpoint().GetAddress().GetSocketAddress().PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: uint32(p)}
			}
		}
	}
	web := startProxy(t, wb)
	outbound := web.ListenerAddrs()["outbound:127.0.0.1:0"]

	do := func(method, path string) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+outbound+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), resp.Header.Get("x-trellis-reason")
	}
	if backendIdentity != "backend" {
		if code, body, _ := do("GET", "/items"); code != 503 {
			t.Errorf("GET /items to an impostor = %d %q, want 503", code, body)
		}
		return
	}
	wantProto := "HTTP/1.1"
	if protocol == "http2" {
		wantProto = "HTTP/2.0"
	}
	if code, body, reason := do("GET", "/items"); code != 200 || body != wantProto+" GET /items" {
		t.Errorf("GET /items = %d %q (%s), want 200 from the application over %s", code, body, reason, wantProto)
	}
	if code, _, reason := do("POST", "/items"); code != 403 || reason != "rbac_access_denied_matched_policy[none]" {
		t.Errorf("POST = %d %q, want 403 with no ALLOW rule matched", code, reason)
	}
	if code, _, reason := do("GET", "/public/../admin"); code != 403 || reason != "rbac_access_denied_matched_policy[default/no-admin/rule/0]" {
		t.Errorf("GET /public/../admin = %d %q, want 403 naming default/no-admin/rule/0", code, reason)
	}

	// Straight to the STRICT inbound: plaintext and TLS without a
	// client certificate are refused.
	c := &http.Client{Timeout: 5 * time.Second}
	if resp, err := c.Get("http://" + inbound + "/items"); err == nil {
		resp.Body.Close()
		t.Errorf("plaintext to the STRICT inbound: %s, want refused", resp.Status)
	}
	conn, err := tls.Dial("tcp", inbound, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	if err == nil {
		_, err = conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		if err == nil {
			_, err = conn.Read(make([]byte, 1))
		}
		conn.Close()
	}
	if err == nil {
		t.Error("TLS without a client certificate got an answer from the STRICT inbound")
	}
}
