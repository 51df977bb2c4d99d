package ads_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/trellis-mesh/trellis/internal/identity/certclient"
	"github.com/trellis-mesh/trellis/internal/identity/certclient/signtest"
	"github.com/trellis-mesh/trellis/internal/xds/ads"
)

// issue obtains a certificate for service the way a proxy does.
func issue(t *testing.T, sign *signtest.Server, service string) *tls.Certificate {
	t.Helper()
	tok, _ := sign.Token(t, service)
	c, err := certclient.New(certclient.Options{Conn: sign.Conn(), Token: func() (string, error) { return tok, nil }})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := c.Renew(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// meshPair starts the mesh's certificate service, a control plane, an app,
// and the two sidecars, and waits until traffic flows client → server.
type meshPair struct {
	sign           *signtest.Server
	cp             *controlPlane
	app            *upstream
	client, server *sidecar
	inbound        string // the server sidecar's inbound address
	outbound       string // the client sidecar's outbound address
}

func startMeshPair(t *testing.T, opts signtest.Options) *meshPair {
	t.Helper()
	opts.Mesh = testMesh
	m := &meshPair{sign: signtest.Start(t, opts), cp: startControlPlane(t, "127.0.0.1:0"), app: startUpstream(t, "app")}
	_, appPort := m.app.hostPort()
	m.cp.set("default/server", serverSnapshot(t, "1", m.sign, int(appPort)))
	serverTok, _ := m.sign.Token(t, "server")
	m.server = startSidecar(t, m.cp.addr, ads.StaticNode("default/server", testMesh), m.sign, serverTok)
	inPort := port(t, m.server.Proxy, "inbound")
	m.inbound = fmt.Sprintf("127.0.0.1:%d", inPort)
	m.cp.set("default/client", clientSnapshot(t, "1", m.sign, inPort))
	clientTok, _ := m.sign.Token(t, "client")
	m.client = startSidecar(t, m.cp.addr, ads.StaticNode("default/client", testMesh), m.sign, clientTok)
	m.outbound = fmt.Sprintf("127.0.0.1:%d", port(t, m.client.Proxy, "outbound"))
	return m
}

func getBody(c *http.Client, url string) (int, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestMutualTLSBetweenSidecars: two real proxies get certificates with
// their tokens from the real Authority and the trust bundle over SDS;
// traffic flows between them over mutual TLS 1.3 with HTTP/2; the server
// sidecar sees the client's SPIFFE ID (its RBAC admits only that one);
// a plaintext client and a client of another identity are refused.
func TestMutualTLSBetweenSidecars(t *testing.T) {
	m := startMeshPair(t, signtest.Options{})
	waitFor(t, "traffic client → server", func() bool {
		code, body, err := getBody(http.DefaultClient, "http://"+m.outbound+"/hello")
		return err == nil && code == 200 && body == "app"
	})
	if got := ready(t, m.server.Proxy); got != 200 {
		t.Errorf("server sidecar /ready = %d", got)
	}

	t.Run("server presents its identity over TLS 1.3 with h2", func(t *testing.T) {
		conn, err := handshake(m.inbound, issue(t, m.sign, "client"), "h2")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		st := conn.ConnectionState()
		if st.Version != tls.VersionTLS13 || st.NegotiatedProtocol != "h2" {
			t.Errorf("version %x, ALPN %q; want TLS 1.3 and h2", st.Version, st.NegotiatedProtocol)
		}
		if got := st.PeerCertificates[0].URIs[0].String(); got != serverID {
			t.Errorf("server presented %s, want %s", got, serverID)
		}
	})
	t.Run("plaintext client refused", func(t *testing.T) {
		if code, _, err := getBody(http.DefaultClient, "http://"+m.inbound+"/"); err == nil {
			t.Errorf("a plaintext request to the STRICT inbound got %d", code)
		}
	})
	t.Run("TLS client without a certificate refused", func(t *testing.T) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // the server is what is tested
		if code, _, err := getBody(c, "https://"+m.inbound+"/"); err == nil {
			t.Errorf("a request without a client certificate got %d", code)
		}
	})
	t.Run("another identity is authenticated but not admitted", func(t *testing.T) {
		cert := issue(t, m.sign, "intruder")
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{*cert}}}} //nolint:gosec // as above
		code, body, err := getBody(c, "https://"+m.inbound+"/")
		if err != nil || code != 403 {
			t.Errorf("intruder: %d %q %v; want 403 from RBAC", code, body, err)
		}
	})
	t.Run("a certificate from another CA is refused", func(t *testing.T) {
		other := signtest.Start(t, signtest.Options{Mesh: testMesh})
		cert := issue(t, other, "client")                                                                                                             // the right name, the wrong CA
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{*cert}}}} //nolint:gosec // as above
		if code, _, err := getBody(c, "https://"+m.inbound+"/"); err == nil {
			t.Errorf("a client certificate of another CA got %d", code)
		}
	})
}

// TestTokenForAnotherService: a proxy whose Dataplane says it is "server"
// but whose token grants "client" asks for server's certificate, is
// refused with PermissionDenied, says so in its log, and never becomes
// ready: its configuration needs the certificate.
func TestTokenForAnotherService(t *testing.T) {
	sign := signtest.Start(t, signtest.Options{Mesh: testMesh})
	cp := startControlPlane(t, "127.0.0.1:0")
	app := startUpstream(t, "app")
	_, appPort := app.hostPort()
	node, err := ads.ParseDataplane([]byte("kind: Dataplane\nmetadata: {name: server-1, labels: {app: server, trellis.dev/mesh: shop}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	cp.set(node.GetId(), serverSnapshot(t, "1", sign, int(appPort)))
	tok, _ := sign.Token(t, "client")
	sc := startSidecar(t, cp.addr, node, sign, tok)
	want := `identity: certificate refused: PermissionDenied: csr: URI SAN "` + serverID + `" does not match the granted identity "` + clientID + `"`
	waitFor(t, "the PermissionDenied log line", func() bool { return strings.Contains(strings.ReplaceAll(sc.logs.String(), `\"`, `"`), want) })
	waitFor(t, "the wait for the certificate to be logged", func() bool {
		return strings.Contains(sc.logs.String(), "waiting for this proxy's certificate before applying the configuration")
	})
	if got := ready(t, sc.Proxy); got != 503 {
		t.Errorf("/ready = %d, want 503", got)
	}
	if sign.Signed.Load() != 0 {
		t.Errorf("%d certificates signed", sign.Signed.Load())
	}
	if len(sc.ListenerAddrs()) != 0 {
		t.Errorf("listeners %v serve without a certificate", sc.ListenerAddrs())
	}
}
