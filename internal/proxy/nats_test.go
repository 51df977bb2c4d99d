package proxy_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/internal/testutil/certs"
)

// startNATS runs a real nats-server in the test process on 127.0.0.1 and
// a random port.
func startNATS(t testing.TB) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

type natsData struct {
	NATS        string
	CA          string
	Cert, Key   string
	ProducerSAN string
}

// natsProxy has three listeners in front of one nats-server: "nats" with a
// policy, "traced" injecting traceparent, and "mtls" with mutual TLS and a
// policy by SPIFFE ID.
const natsProxy = `
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources:
  listeners:
  - name: nats
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: trellis.filters.network.nats
        typed_config:
          "@type": type.googleapis.com/xds.type.v3.TypedStruct
          type_url: type.googleapis.com/trellis.filters.network.nats.v1.Nats
          value:
            stat_prefix: nats
            max_frame_bytes: 65536
            policies:
            - {action: DENY, operations: [publish], subjects: ["secret.>"]}
            - {action: DENY, operations: [subscribe], subjects: ["private.*"], principals: ["127.0.0.0/8"]}
      - {name: tcp, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: nats, cluster: nats}}
  - name: traced
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: trellis.filters.network.nats
        typed_config:
          "@type": type.googleapis.com/xds.type.v3.TypedStruct
          type_url: type.googleapis.com/trellis.filters.network.nats.v1.Nats
          value: {stat_prefix: traced, inject_traceparent: true}
      - {name: tcp, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: traced, cluster: nats}}
  - name: mtls
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_certificates: [{certificate_chain: {filename: "{{.Cert}}"}, private_key: {filename: "{{.Key}}"}}]
            validation_context: {trusted_ca: {filename: "{{.CA}}"}}
      filters:
      - name: trellis.filters.network.nats
        typed_config:
          "@type": type.googleapis.com/xds.type.v3.TypedStruct
          type_url: type.googleapis.com/trellis.filters.network.nats.v1.Nats
          value:
            stat_prefix: mtls
            default_action: DENY
            policies:
            - {action: ALLOW, operations: [publish], subjects: ["orders.>"], principals: ["{{.ProducerSAN}}"]}
            - {action: ALLOW, operations: [subscribe], subjects: [">"], principals: ["any"]}
      - {name: tcp, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: mtls, cluster: nats}}
  clusters:
  - name: nats
    load_assignment: {cluster_name: nats, endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .NATS}}}}]}]}
`

// natsEnv is a nats-server, a proxy in front of it and a CA for mTLS.
type natsEnv struct {
	srv   *server.Server
	ca    *certs.CA
	addrs map[string]string
	admin string
}

func newNATSEnv(t *testing.T) *natsEnv { return newNATSEnvB(t) }

func newNATSEnvB(t testing.TB) *natsEnv {
	s := startNATS(t)
	ca := certs.NewCA(t, "mesh-ca")
	leaf := ca.Issue(t, certs.LeafOptions{CommonName: "nats", DNSNames: []string{"nats.mesh"}, URIs: []string{"spiffe://mesh.test/nats"}})
	p := startProxy(t, natsProxy, natsData{NATS: s.Addr().String(), CA: ca.File(), Cert: leaf.CertFile, Key: leaf.KeyFile,
		ProducerSAN: "spiffe://mesh.test/producer"})
	return &natsEnv{srv: s, ca: ca, addrs: p.ListenerAddrs(), admin: p.AdminAddr()}
}

// connect opens a nats.go connection; async errors go to errs when given.
func connect(t *testing.T, addr string, errs chan<- error, opts ...natsgo.Option) *natsgo.Conn {
	t.Helper()
	opts = append(opts, natsgo.NoReconnect(), natsgo.Timeout(5*time.Second))
	if errs != nil {
		opts = append(opts, natsgo.ErrorHandler(func(_ *natsgo.Conn, _ *natsgo.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
	}
	nc, err := natsgo.Connect("nats://"+addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// waitCount polls until c reaches want.
func waitCount(t *testing.T, c *atomic.Int64, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("received %d, want %d", c.Load(), want)
		}
		time.Sleep(5 * time.Millisecond) // polling with a deadline
	}
}

func TestNATSProxy(t *testing.T) {
	env := newNATSEnv(t)
	addr := env.addrs["nats"]

	t.Run("INFO arrives before the client sends anything", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "INFO {") {
			t.Fatalf("first line %q, %v", line, err)
		}
	})

	t.Run("pub/sub through the proxy with per-subject metrics", func(t *testing.T) {
		sub := connect(t, addr, nil)
		var orders, audit atomic.Int64
		if _, err := sub.Subscribe("orders.*", func(*natsgo.Msg) { orders.Add(1) }); err != nil {
			t.Fatal(err)
		}
		if _, err := sub.Subscribe("audit", func(*natsgo.Msg) { audit.Add(1) }); err != nil {
			t.Fatal(err)
		}
		if err := sub.Flush(); err != nil {
			t.Fatal(err)
		}
		pub := connect(t, addr, nil)
		payload := []byte(strings.Repeat("p", 100))
		const n = 500
		for i := range n {
			subj := "orders.eu"
			if i%2 == 1 {
				subj = "orders.us"
			}
			if err := pub.Publish(subj, payload); err != nil {
				t.Fatal(err)
			}
		}
		for range 10 {
			if err := pub.PublishMsg(&natsgo.Msg{Subject: "audit", Header: natsgo.Header{"k": {"v"}}, Data: []byte("x")}); err != nil {
				t.Fatal(err)
			}
		}
		if err := pub.Flush(); err != nil {
			t.Fatal(err)
		}
		waitCount(t, &orders, n)
		waitCount(t, &audit, 10)
		m := scrape(t, env.admin)
		for series, want := range map[string]float64{
			`trellis_nats_messages_total{direction="publish",stat_prefix="nats",subject="orders.eu"}`: n / 2,
			`trellis_nats_messages_total{direction="publish",stat_prefix="nats",subject="orders.us"}`: n / 2,
			`trellis_nats_bytes_total{direction="publish",stat_prefix="nats",subject="orders.eu"}`:    n / 2 * 100,
			`trellis_nats_messages_total{direction="deliver",stat_prefix="nats",subject="orders.*"}`:  n,
			`trellis_nats_bytes_total{direction="deliver",stat_prefix="nats",subject="orders.*"}`:     n * 100,
			`trellis_nats_messages_total{direction="publish",stat_prefix="nats",subject="audit"}`:     10,
			`trellis_nats_messages_total{direction="deliver",stat_prefix="nats",subject="audit"}`:     10,
		} {
			if got := metricValue(m, series); got != want {
				t.Errorf("%s = %v, want %v", series, got, want)
			}
		}
		if strings.Contains(m, `subject="orders.eu",direction="deliver"`) || metricValue(m, `trellis_nats_messages_total{direction="deliver",stat_prefix="nats",subject="orders.eu"}`) != -1 {
			t.Error("a delivery was labelled with the published subject, not the subscription's pattern")
		}
	})

	t.Run("request/reply inboxes count under one label", func(t *testing.T) {
		responder := connect(t, addr, nil)
		responder.Subscribe("svc.echo", func(m *natsgo.Msg) { m.Respond(m.Data) })
		responder.Flush()
		requester := connect(t, addr, nil)
		for i := range 5 {
			m, err := requester.Request("svc.echo", []byte{byte(i)}, 5*time.Second)
			if err != nil || len(m.Data) != 1 || m.Data[0] != byte(i) {
				t.Fatalf("request %d: %v %v", i, m, err)
			}
		}
		m := scrape(t, env.admin)
		for series, want := range map[string]float64{
			`trellis_nats_messages_total{direction="publish",stat_prefix="nats",subject="svc.echo"}`: 5,
			`trellis_nats_messages_total{direction="deliver",stat_prefix="nats",subject="svc.echo"}`: 5,
			`trellis_nats_messages_total{direction="publish",stat_prefix="nats",subject="_INBOX.>"}`: 5,
			`trellis_nats_messages_total{direction="deliver",stat_prefix="nats",subject="_INBOX.>"}`: 5,
		} {
			if got := metricValue(m, series); got != want {
				t.Errorf("%s = %v, want %v", series, got, want)
			}
		}
		if regexp.MustCompile(`subject="_INBOX\.[^>]`).MatchString(m) {
			t.Error("an inbox subject got its own series")
		}
	})

	t.Run("denied publish gets the permissions error and reaches no one", func(t *testing.T) {
		direct := connect(t, env.srv.Addr().String(), nil)
		var secret, marker atomic.Int64
		if _, err := direct.Subscribe("secret.>", func(*natsgo.Msg) { secret.Add(1) }); err != nil {
			t.Fatal(err)
		}
		if _, err := direct.Subscribe("marker", func(*natsgo.Msg) { marker.Add(1) }); err != nil {
			t.Fatal(err)
		}
		direct.Flush()
		errs := make(chan error, 4)
		pub := connect(t, addr, errs)
		if err := pub.Publish("secret.plans", []byte("x")); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-errs:
			if !errors.Is(err, natsgo.ErrPermissionViolation) || !strings.Contains(err.Error(), `Publish to "secret.plans"`) {
				t.Fatalf("async error %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no permissions violation reported to the client")
		}
		// The connection stays up; a later message on it arrives, and the
		// denied one, sent before it on the same connection, did not.
		if err := pub.Publish("marker", nil); err != nil {
			t.Fatal(err)
		}
		pub.Flush()
		waitCount(t, &marker, 1)
		if secret.Load() != 0 || !pub.IsConnected() {
			t.Fatalf("secret delivered %d times, connected %v", secret.Load(), pub.IsConnected())
		}
		m := scrape(t, env.admin)
		if v := metricValue(m, `trellis_nats_denied_total{operation="publish",stat_prefix="nats",subject="secret.plans"}`); v != 1 {
			t.Errorf("denied metric %v", v)
		}
	})

	t.Run("denied subscribe", func(t *testing.T) {
		errs := make(chan error, 4)
		sub := connect(t, addr, errs, natsgo.PermissionErrOnSubscribe(true))
		s, err := sub.SubscribeSync("private.inbox")
		if err != nil {
			t.Fatal(err)
		}
		sub.Flush()
		direct := connect(t, env.srv.Addr().String(), nil)
		direct.Publish("private.inbox", []byte("x"))
		direct.Flush()
		if _, err := s.NextMsg(2 * time.Second); !errors.Is(err, natsgo.ErrPermissionViolation) {
			t.Fatalf("NextMsg: %v, want a permissions violation", err)
		}
		if !strings.Contains((<-errs).Error(), `Subscription to "private.inbox"`) {
			t.Fatal("async error does not name the subscription")
		}
		if !sub.IsConnected() {
			t.Fatal("connection closed after a denied subscription")
		}
		m := scrape(t, env.admin)
		if v := metricValue(m, `trellis_nats_denied_total{operation="subscribe",stat_prefix="nats",subject="private.inbox"}`); v != 1 {
			t.Errorf("denied metric %v", v)
		}
	})

	t.Run("bad frames close only their connection", func(t *testing.T) {
		good := connect(t, addr, nil)
		var got atomic.Int64
		good.Subscribe("still.alive", func(*natsgo.Msg) { got.Add(1) })
		good.Flush()
		for _, tc := range []struct{ name, send, errLine, reason string }{
			{"oversized payload", "PUB x 65537\r\n", "-ERR 'Maximum Payload Violation'", "payload_too_large"},
			{"long control line", "SUB " + strings.Repeat("a", 5000) + " 1\r\n", "-ERR 'Maximum Control Line Exceeded'", "control_line_too_long"},
			{"garbage", "HELLO WORLD\r\n", "-ERR 'Unknown Protocol Operation'", "unknown_operation"},
			{"server operation from the client", "MSG a 1 0\r\n\r\n", "-ERR 'Unknown Protocol Operation'", "wrong_direction"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				br := bufio.NewReader(c)
				if l, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(l, "INFO") {
					t.Fatalf("INFO: %q %v", l, err)
				}
				io.WriteString(c, "CONNECT {\"verbose\":false}\r\n"+tc.send)
				rest, _ := io.ReadAll(br) // ends at EOF or a reset: the proxy closed it
				if !strings.HasPrefix(string(rest), tc.errLine) && len(rest) > 0 {
					t.Errorf("got %q before the close, want %q", rest, tc.errLine)
				}
				m := scrape(t, env.admin)
				if v := metricValue(m, fmt.Sprintf(`trellis_nats_protocol_errors_total{reason=%q,stat_prefix="nats"}`, tc.reason)); v != 1 {
					t.Errorf("protocol error metric %v", v)
				}
			})
		}
		before := got.Load()
		if err := good.Publish("still.alive", nil); err != nil {
			t.Fatal(err)
		}
		good.Flush()
		waitCount(t, &got, before+1)
	})
}

func TestNATSProxyTraceparent(t *testing.T) {
	env := newNATSEnv(t)
	sub := connect(t, env.srv.Addr().String(), nil)
	s, err := sub.SubscribeSync("traced")
	if err != nil {
		t.Fatal(err)
	}
	sub.Flush()
	pub := connect(t, env.addrs["traced"], nil)
	pub.Publish("traced", []byte("hello"))
	pub.PublishMsg(&natsgo.Msg{Subject: "traced", Header: natsgo.Header{"traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}, Data: []byte("mine")})
	pub.Flush()
	m, err := s.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tp := m.Header.Get("traceparent")
	if string(m.Data) != "hello" || !regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-01$`).MatchString(tp) {
		t.Fatalf("data %q traceparent %q", m.Data, tp)
	}
	// A message that already carries headers is passed unchanged.
	m, err = s.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != "mine" || m.Header.Get("traceparent") != "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" {
		t.Fatalf("data %q traceparent %q", m.Data, m.Header.Get("traceparent"))
	}
}

// TestNATSProxyMutualTLS: over mutual TLS the policy names clients by the
// SPIFFE ID of their certificate.
func TestNATSProxyMutualTLS(t *testing.T) {
	env := newNATSEnv(t)
	direct := connect(t, env.srv.Addr().String(), nil)
	var orders atomic.Int64
	direct.Subscribe("orders.>", func(*natsgo.Msg) { orders.Add(1) })
	direct.Flush()
	dial := func(id string) (*natsgo.Conn, chan error) {
		leaf := env.ca.Issue(t, certs.LeafOptions{CommonName: id, URIs: []string{"spiffe://mesh.test/" + id}})
		errs := make(chan error, 4)
		// The sidecar speaks TLS from the first byte, the client's NATS
		// connection runs inside it (as an app talking to its own sidecar
		// would not, but as sidecar A talking to sidecar B does).
		nc := connect(t, env.addrs["mtls"], errs, natsgo.SetCustomDialer(tlsDialer{&tls.Config{
			RootCAs: env.ca.Pool(), ServerName: "nats.mesh", Certificates: []tls.Certificate{leaf.TLS}}}))
		return nc, errs
	}
	producer, _ := dial("producer")
	producer.Publish("orders.new", []byte("1"))
	producer.Flush()
	waitCount(t, &orders, 1)

	other, errs := dial("other")
	other.Publish("orders.new", []byte("2"))
	select {
	case err := <-errs:
		if !errors.Is(err, natsgo.ErrPermissionViolation) {
			t.Fatalf("async error %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("publish by spiffe://mesh.test/other was not refused")
	}
	producer.Publish("orders.new", []byte("3"))
	producer.Flush()
	waitCount(t, &orders, 2)
	if orders.Load() != 2 {
		t.Fatalf("delivered %d, want 2", orders.Load())
	}
}

// tlsDialer dials TLS for nats.go, below its protocol.
type tlsDialer struct{ cfg *tls.Config }

func (d tlsDialer) Dial(network, address string) (net.Conn, error) {
	return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, network, address, d.cfg)
}

// BenchmarkNATSPublish publishes 128-byte messages to a subscriber, with
// the client talking to nats-server directly and through the proxy's NATS
// filter (policy and metrics on); msgs/s counts messages received.
func BenchmarkNATSPublish(b *testing.B) {
	for _, via := range []string{"direct", "proxy"} {
		b.Run(via, func(b *testing.B) {
			env := newNATSEnvB(b)
			addr := env.srv.Addr().String()
			if via == "proxy" {
				addr = env.addrs["nats"]
			}
			sub, err := natsgo.Connect("nats://"+addr, natsgo.NoReconnect())
			if err != nil {
				b.Fatal(err)
			}
			defer sub.Close()
			var got atomic.Int64
			sub.Subscribe("bench.*", func(*natsgo.Msg) { got.Add(1) })
			sub.Flush()
			pub, err := natsgo.Connect("nats://"+addr, natsgo.NoReconnect())
			if err != nil {
				b.Fatal(err)
			}
			defer pub.Close()
			payload := make([]byte, 128)
			b.ReportAllocs()
			b.SetBytes(128)
			start := time.Now()
			var n int64
			for b.Loop() {
				pub.Publish("bench.x", payload)
				n++
			}
			pub.Flush()
			deadline := time.Now().Add(30 * time.Second)
			for got.Load() < n && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond) // polling with a deadline
			}
			if got.Load() != n {
				b.Fatalf("received %d of %d", got.Load(), n)
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkNATSRequest measures request/reply round trips (ns/op), with
// requester and responder both talking to nats-server directly or both
// through the proxy (each message crosses the filter twice).
func BenchmarkNATSRequest(b *testing.B) {
	for _, via := range []string{"direct", "proxy"} {
		b.Run(via, func(b *testing.B) {
			env := newNATSEnvB(b)
			addr := env.srv.Addr().String()
			if via == "proxy" {
				addr = env.addrs["nats"]
			}
			responder, err := natsgo.Connect("nats://"+addr, natsgo.NoReconnect())
			if err != nil {
				b.Fatal(err)
			}
			defer responder.Close()
			responder.Subscribe("svc.bench", func(m *natsgo.Msg) { m.Respond(m.Data) })
			responder.Flush()
			requester, err := natsgo.Connect("nats://"+addr, natsgo.NoReconnect())
			if err != nil {
				b.Fatal(err)
			}
			defer requester.Close()
			payload := make([]byte, 128)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := requester.Request("svc.bench", payload, 5*time.Second); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestNATSConfigErrors: a bad NATS filter configuration is refused whole,
// with the path of the field.
func TestNATSConfigErrors(t *testing.T) {
	const head = `
static_resources:
  clusters:
  - name: upstream
    load_assignment: {cluster_name: upstream, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 4222}}}}]}]}
  listeners:
  - name: nats
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
`
	const tcp = `      - {name: tcp, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: up, cluster: upstream}}
`
	filter := func(typeURL, value string) string {
		return `      - name: trellis.filters.network.nats
        typed_config:
          "@type": type.googleapis.com/xds.type.v3.TypedStruct
          type_url: ` + typeURL + `
          value: ` + value + "\n"
	}
	const url = "type.googleapis.com/trellis.filters.network.nats.v1.Nats"
	tests := []struct {
		name, filters, want string
	}{
		{"unknown field", filter(url, "{stat_prefix: x, max_payload: 10}") + tcp,
			"static_resources.listeners[0].filter_chains[0].filters[0].typed_config.value.max_payload: unknown field"},
		{"bad subject", filter(url, `{stat_prefix: x, policies: [{action: DENY, operations: [publish], subjects: ["a.>.b"]}]}`) + tcp,
			"filter_chains[0].filters[0].typed_config.value.policies[0].subjects[0]: \"a.>.b\": '>' must be the last token"},
		{"missing stat_prefix", filter(url, "{}") + tcp, "filters[0].typed_config.value.stat_prefix: required"},
		{"unknown extension", filter("type.googleapis.com/trellis.filters.network.nope", "{}") + tcp, `filters[0].typed_config.type_url: "type.googleapis.com/trellis.filters.network.nope" not supported`},
		{"as the terminal filter", filter(url, "{stat_prefix: x}"), "filters[0]: trellis.filters.network.nats is not a terminal filter"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := startProxy(t, "static_resources: {}\n", nil)
			err := apply(t, p, head+tc.filters, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}
