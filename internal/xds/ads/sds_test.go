package ads_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/trellis-mesh/trellis/internal/identity/certclient/signtest"
	"github.com/trellis-mesh/trellis/internal/xds/ads"
)

// TestSecretWarming: a configuration whose trust bundle has not arrived
// is held whole — the proxy stays not ready though it has its
// certificate — and applied once the Secret comes; the client asks for
// the bundle by name and never for trellis-identity.
func TestSecretWarming(t *testing.T) {
	sign := signtest.Start(t, signtest.Options{Mesh: testMesh})
	cp := startControlPlane(t, "127.0.0.1:0")
	app := startUpstream(t, "app")
	_, appPort := app.hostPort()
	noSecrets := snapshotOf(t, "1",
		[]types.Resource{fromYAML[listenerv3.Listener](t, inboundYAML, nil)},
		[]types.Resource{fromYAML[clusterv3.Cluster](t, appClusterYAML, int(appPort))})
	cp.set("default/server", noSecrets)
	tok, _ := sign.Token(t, "server")
	sc := startSidecar(t, cp.addr, ads.StaticNode("default/server", testMesh), sign, tok)

	cp.waitRequest("a subscription to the trust bundle", func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == ads.SecretType && slices.Equal(r.GetResourceNames(), []string{bundleSecret})
	})
	<-sc.rot.Ready()
	waitFor(t, "the wait to be logged", func() bool {
		return strings.Contains(sc.logs.String(), `missing="secret \"trellis-trust-bundle\""`)
	})
	if got := ready(t, sc.Proxy); got != 503 {
		t.Errorf("/ready without the trust bundle = %d, want 503", got)
	}
	cp.mu.Lock()
	for _, r := range cp.reqs {
		if r.GetTypeUrl() == ads.ListenerType && r.GetVersionInfo() == "1" {
			t.Error("listeners ACKed before their secrets arrived")
		}
		if slices.Contains(r.GetResourceNames(), ads.IdentitySecret) {
			t.Errorf("the proxy asked the control plane for %s", ads.IdentitySecret)
		}
	}
	cp.mu.Unlock()

	cp.set("default/server", serverSnapshot(t, "2", sign, int(appPort)))
	waitFor(t, "/ready", func() bool { return ready(t, sc.Proxy) == 200 })
	cp.waitRequest("ACK of the secret", ack(ads.SecretType, "2"))
	cp.waitRequest("ACK of the listeners", ack(ads.ListenerType, "2"))
}

// TestTrustBundleUpdate: a new trust bundle over SDS takes effect for new
// upstream connections: with another CA's root only, the client sidecar
// no longer trusts the server sidecar (fail closed, no plaintext); with
// the mesh's root again, traffic flows.
func TestTrustBundleUpdate(t *testing.T) {
	m := startMeshPair(t, signtest.Options{})
	url := "http://" + m.outbound + "/"
	status := func() int {
		code, _, err := getBody(http.DefaultClient, url)
		if err != nil {
			return 0
		}
		return code
	}
	waitFor(t, "traffic", func() bool { return status() == 200 })
	inPort := port(t, m.server.Proxy, "inbound")

	other := signtest.Start(t, signtest.Options{Mesh: testMesh})
	m.cp.set("default/client", clientSnapshot(t, "2", other, inPort))
	m.cp.waitRequest("ACK of the other bundle", ack(ads.SecretType, "2"))
	http.DefaultClient.CloseIdleConnections()
	waitFor(t, "the server to be distrusted", func() bool { return status() == 503 })

	m.cp.set("default/client", clientSnapshot(t, "3", m.sign, inPort))
	waitFor(t, "traffic with the mesh's bundle again", func() bool { return status() == 200 })
}

// TestNoTokenLogsWhy: without a token, a configuration needing the
// proxy's certificate is never applied, and the log says why.
func TestNoTokenLogsWhy(t *testing.T) {
	sign := signtest.Start(t, signtest.Options{Mesh: testMesh})
	cp := startControlPlane(t, "127.0.0.1:0")
	app := startUpstream(t, "app")
	_, appPort := app.hostPort()
	cp.set("n1", serverSnapshot(t, "1", sign, int(appPort)))
	logs := &logBuffer{t: t}
	p := runProxyLogged(t, cp.addr, ads.StaticNode("n1", testMesh), logs)
	waitFor(t, "the explanation", func() bool {
		return strings.Contains(logs.String(), "the proxy has no dataplane token (--token-file)")
	})
	if got := ready(t, p); got != 503 {
		t.Errorf("/ready = %d, want 503", got)
	}
}
