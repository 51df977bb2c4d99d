package proxy_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/internal/testutil/certs"
)

// natsSidecarA takes plain NATS from the application and carries it to
// sidecar B over mutual TLS, presenting the producer's SPIFFE ID and
// checking B's.
const natsSidecarA = `
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources:
  listeners:
  - name: outbound
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: trellis.filters.network.nats
        typed_config:
          "@type": type.googleapis.com/xds.type.v3.TypedStruct
          type_url: type.googleapis.com/trellis.filters.network.nats.v1.Nats
          value: {stat_prefix: outbound}
      - {name: tcp, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: outbound, cluster: b}}
  clusters:
  - name: b
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: nats.mesh
        common_tls_context:
          tls_certificates: [{certificate_chain: {filename: "{{.Cert}}"}, private_key: {filename: "{{.Key}}"}}]
          validation_context:
            trusted_ca: {filename: "{{.CA}}"}
            match_typed_subject_alt_names: [{san_type: URI, matcher: {exact: "spiffe://mesh.test/nats"}}]
    load_assignment: {cluster_name: b, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .NATS}}}}]}]}
`

// TestNATSSidecarPair: a nats.go application talks plain NATS to its
// sidecar A, which carries it over mutual TLS to sidecar B in front of
// nats-server; B's policy sees A's SPIFFE ID, counts equal on both sides,
// and a forbidden publish comes back to the application as nats-server's
// permissions error through both sidecars.
func TestNATSSidecarPair(t *testing.T) {
	env := newNATSEnv(t) // its "mtls" listener is sidecar B
	producer := env.ca.Issue(t, certs.LeafOptions{CommonName: "producer", URIs: []string{"spiffe://mesh.test/producer"}})
	a := startProxy(t, natsSidecarA, natsData{NATS: env.addrs["mtls"], CA: env.ca.File(), Cert: producer.CertFile, Key: producer.KeyFile})

	direct := connect(t, env.srv.Addr().String(), nil)
	var orders, other atomic.Int64
	direct.Subscribe("orders.>", func(*natsgo.Msg) { orders.Add(1) })
	direct.Subscribe("billing.>", func(*natsgo.Msg) { other.Add(1) })
	direct.Flush()

	errs := make(chan error, 4)
	app := connect(t, a.ListenerAddrs()["outbound"], errs)
	const n = 200
	for range n {
		if err := app.Publish("orders.created", []byte("order")); err != nil {
			t.Fatal(err)
		}
	}
	app.Publish("billing.charge", []byte("no"))
	app.Flush()
	select {
	case err := <-errs:
		if !errors.Is(err, natsgo.ErrPermissionViolation) || !strings.Contains(err.Error(), `Publish to "billing.charge"`) {
			t.Fatalf("async error %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the forbidden publish was not refused")
	}
	waitCount(t, &orders, n)
	app.Publish("orders.created", []byte("after"))
	app.Flush()
	waitCount(t, &orders, n+1)
	if other.Load() != 0 || orders.Load() != n+1 {
		t.Fatalf("delivered orders %d (want %d), billing %d (want 0)", orders.Load(), n+1, other.Load())
	}
	ma, mb := scrape(t, a.AdminAddr()), scrape(t, env.admin)
	for _, c := range []struct {
		text, series string
		want         float64
	}{
		{ma, `trellis_nats_messages_total{direction="publish",stat_prefix="outbound",subject="orders.created"}`, n + 1},
		{ma, `trellis_nats_messages_total{direction="publish",stat_prefix="outbound",subject="billing.charge"}`, 1},
		{mb, `trellis_nats_messages_total{direction="publish",stat_prefix="mtls",subject="orders.created"}`, n + 1},
		{mb, `trellis_nats_denied_total{operation="publish",stat_prefix="mtls",subject="billing.charge"}`, 1},
	} {
		if got := metricValue(c.text, c.series); got != c.want {
			t.Errorf("%s = %v, want %v", c.series, got, c.want)
		}
	}
}
