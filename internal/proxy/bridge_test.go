package proxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/internal/bridge/brokertest"
)

// bridgeProxy is a sidecar's bridge listener as the control plane emits it
// (translator/bridge.go): the bridge filter, then a router answering 404.
const bridgeProxy = `
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources:
  listeners:
  - name: bridge
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bridge
          route_config: {name: bridge, virtual_hosts: [{name: bridge, domains: ["*"], routes: [{name: publish, match: {prefix: /}, direct_response: {status: 404}}]}]}
          http_filters:
          - name: trellis.filters.http.bridge
            typed_config:
              "@type": type.googleapis.com/xds.type.v3.TypedStruct
              type_url: type.googleapis.com/trellis.filters.http.bridge.v1.Bridge
              value:
                source: spiffe://default.trellis.local/default/orders
                brokers: [{name: events, type: nats, addresses: ["{{.NATS}}"], jet_stream: true}]
                subscriptions:
                - {name: default/billing, broker: events, topic: orders.created, consumer_group: billing, url: "{{.App}}/events", {{.Extra}}}
          - {name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
`

// TestBridgeFilter drives the bridge through a real proxy listener: a
// publish reaches a real JetStream and comes back to the application; a
// reload with the same configuration keeps the consumer (no redelivery,
// one subscription); the metrics are on the proxy's /stats/prometheus.
func TestBridgeFilter(t *testing.T) {
	n := brokertest.StartNATS(t, true)
	got := make(chan string, 10)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r.Header.Get("Ce-Source") + " " + string(b)
	}))
	t.Cleanup(app.Close)
	data := map[string]string{"NATS": n.URL, "App": app.URL, "Extra": "concurrency: 2"}
	p := startProxy(t, bridgeProxy, data)
	url := "http://" + p.ListenerAddrs()["bridge"] + "/publish/events/orders.created"
	post := func(body string) int {
		resp, err := http.Post(url, "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("one"); code != http.StatusOK {
		t.Fatalf("publish: %d", code)
	}
	want := func(body string) {
		t.Helper()
		select {
		case g := <-got:
			if g != "spiffe://default.trellis.local/default/orders "+body {
				t.Fatalf("delivered %q, want source and %q", g, body)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%q not delivered", body)
		}
	}
	want("one")
	if err := apply(t, p, bridgeProxy, data); err != nil {
		t.Fatal(err)
	}
	if code := post("two"); code != http.StatusOK {
		t.Fatalf("publish after reload: %d", code)
	}
	want("two")
	select {
	case g := <-got:
		t.Fatalf("unexpected delivery %q after an identical reload", g)
	default:
	}
	if resp, err := http.Get("http://" + p.ListenerAddrs()["bridge"] + "/other"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /other: %v %v", resp, err)
	}
	m := scrape(t, p.AdminAddr())
	for _, line := range []string{
		`trellis_bridge_published_total{broker="events",result="ok",topic="orders.created"} 2`,
		`trellis_bridge_delivered_total{broker="events",result="ok",subscription="default/billing",topic="orders.created"} 2`,
		"trellis_bridge_subscriptions 1",
	} {
		if !strings.Contains(m, line) {
			t.Errorf("metrics lack %q", line)
		}
	}
	// A bad configuration is refused (NACK) and the running one kept.
	data["Extra"] = "concurrency: -1"
	if err := apply(t, p, bridgeProxy, data); err == nil || !strings.Contains(err.Error(), "subscriptions[0].concurrency") {
		t.Fatalf("bad configuration: %v", err)
	}
	if code := post("three"); code != http.StatusOK {
		t.Fatalf("publish after a refused update: %d", code)
	}
	want("three")
	// A configuration without the bridge filter stops its subscriptions.
	if err := apply(t, p, noBridgeProxy, data); err != nil {
		t.Fatal(err)
	}
	if m := scrape(t, p.AdminAddr()); !strings.Contains(m, "trellis_bridge_subscriptions 0") {
		t.Fatalf("subscriptions still running without the bridge filter:\n%s", grepLines(m, "trellis_bridge_subscriptions"))
	}
}

// noBridgeProxy is bridgeProxy's proxy after its Dataplane lost spec.bridge.
const noBridgeProxy = `
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources: {}
`

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
