package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/internal/proxy"
	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

// natsBootstrap is one listener running the Trellis NATS filter (metrics
// only, no policy) before tcp_proxy to the nats-server.
const natsBootstrap = `
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
          value: {stat_prefix: nats}
      - {name: tcp, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: nats, cluster: nats}}
  clusters:
  - name: nats
    load_assignment: {cluster_name: nats, endpoints: [{lb_endpoints: [{endpoint: {address: %s}}]}]}
`

// socketAddress renders host:port as an Envoy SocketAddress in YAML flow
// style.
func socketAddress(hostport string) (string, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("{socket_address: {address: %q, port_value: %s}}", host, port), nil
}

// startProxy applies a bootstrap to a new in-process proxy.
func startProxy(yaml string) (*proxy.Proxy, error) {
	b, err := decode.Bootstrap([]byte(yaml))
	if err != nil {
		return nil, err
	}
	p := proxy.New(proxy.Options{Logger: slog.New(slog.DiscardHandler), DrainTimeout: time.Second})
	if err := p.Apply(b); err != nil {
		p.Shutdown(context.Background())
		return nil, err
	}
	return p, nil
}

func benchNATS(ctx context.Context, c config) ([]row, error) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		return nil, err
	}
	go srv.Start()
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	if !srv.ReadyForConnections(10 * time.Second) {
		return nil, errors.New("nats-server did not start within 10s")
	}
	direct := srv.Addr().String()
	sa, err := socketAddress(direct)
	if err != nil {
		return nil, err
	}
	p, err := startProxy(fmt.Sprintf(natsBootstrap, sa))
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	defer p.Shutdown(context.Background())
	proxied := p.ListenerAddrs()["nats"]

	// The responder answers every request, always connected directly.
	resp, err := natsConnect(direct)
	if err != nil {
		return nil, err
	}
	defer resp.Close()
	if _, err := resp.Subscribe("bench.req", func(m *natsgo.Msg) { _ = m.Respond(m.Data) }); err != nil {
		return nil, err
	}
	if err := resp.Flush(); err != nil {
		return nil, err
	}

	payload := randomBytes(c.payload)
	var rates [2][]float64
	var lat [2][]time.Duration
	err = interleave(c.reps, func(i int) error {
		addr := []string{direct, proxied}[i]
		r, err := natsPublishRate(addr, payload, c.natsMsgs)
		if err != nil {
			return fmt.Errorf("publish via %s: %w", addr, err)
		}
		rates[i] = append(rates[i], r)
		ds, err := natsRequestLatency(ctx, addr, payload, c.natsReqs)
		if err != nil {
			return fmt.Errorf("request via %s: %w", addr, err)
		}
		lat[i] = append(lat[i], ds...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Every publish and every request through the proxy is one PUB.
	want := c.reps * (c.natsMsgs + max(1, c.natsMsgs/10) + c.natsReqs + max(1, c.natsReqs/10))
	if err := checkCount(ctx, p.AdminAddr(), "trellis_nats_messages_total", `direction="publish"`, want); err != nil {
		return nil, err
	}
	return rows("NATS publish (async + flush)", "msgs/s", "NATS request/reply", rates, lat), nil
}

func natsConnect(addr string) (*natsgo.Conn, error) {
	return natsgo.Connect("nats://"+addr, natsgo.NoReconnect(), natsgo.Timeout(5*time.Second))
}

// natsPublishRate publishes n messages on a fresh connection (after a
// warm-up of n/10) and returns messages per second up to the Flush that
// confirms the server has read them all.
func natsPublishRate(addr string, payload []byte, n int) (float64, error) {
	nc, err := natsConnect(addr)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	publish := func(n int) error {
		for range n {
			if err := nc.Publish("bench.pub", payload); err != nil {
				return err
			}
		}
		return nc.FlushTimeout(30 * time.Second)
	}
	if err := publish(max(1, n/10)); err != nil {
		return 0, err
	}
	start := time.Now()
	if err := publish(n); err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// natsRequestLatency sends n requests one after the other (after a
// warm-up of n/10) and returns their round-trip times.
func natsRequestLatency(ctx context.Context, addr string, payload []byte, n int) ([]time.Duration, error) {
	nc, err := natsConnect(addr)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	for range max(1, n/10) {
		if _, err := nc.RequestWithContext(ctx, "bench.req", payload); err != nil {
			return nil, err
		}
	}
	ds := make([]time.Duration, n)
	for i := range ds {
		start := time.Now()
		m, err := nc.RequestWithContext(ctx, "bench.req", payload)
		if err != nil {
			return nil, err
		}
		ds[i] = time.Since(start)
		if len(m.Data) != len(payload) {
			return nil, fmt.Errorf("reply of %d bytes, want %d", len(m.Data), len(payload))
		}
	}
	return ds, nil
}
