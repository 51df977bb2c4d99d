package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/trellis-mesh/trellis/internal/proxy"
	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

// kafkaBootstrap is one listener (at the first %s) running kafka_broker
// before tcp_proxy to the one kfake broker (the third %s); the second %s
// is the broker address rewrite, empty until the listener's port is known.
const kafkaBootstrap = `
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources:
  listeners:
  - name: kafka
    address: %s
    filter_chains:
    - filters:
      - name: envoy.filters.network.kafka_broker
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.kafka_broker.v3.KafkaBroker
          stat_prefix: kafka
%s
      - name: envoy.filters.network.tcp_proxy
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: kafka, cluster: broker}
  clusters:
  - name: broker
    load_assignment: {cluster_name: broker, endpoints: [{lb_endpoints: [{endpoint: {address: %s}}]}]}
`

const kafkaTopic = "bench"

// startKafkaProxy binds the listener on port 0, then applies the bootstrap
// again with that address in the listener and in the rewrite of broker 0,
// so Metadata answers send the client back to the proxy.
func startKafkaProxy(broker string) (*proxy.Proxy, string, error) {
	up, err := socketAddress(broker)
	if err != nil {
		return nil, "", err
	}
	p, err := startProxy(fmt.Sprintf(kafkaBootstrap, "{socket_address: {address: 127.0.0.1, port_value: 0}}", "", up))
	if err != nil {
		return nil, "", err
	}
	listen := p.ListenerAddrs()["kafka"]
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		p.Shutdown(context.Background())
		return nil, "", err
	}
	ls, _ := socketAddress(listen)
	rewrite := fmt.Sprintf("          id_based_broker_address_rewrite_spec: {rules: [{id: 0, host: %q, port: %s}]}", host, port)
	b, err := decode.Bootstrap(fmt.Appendf(nil, kafkaBootstrap, ls, rewrite, up))
	if err == nil {
		err = p.Apply(b)
	}
	if err != nil {
		p.Shutdown(context.Background())
		return nil, "", fmt.Errorf("re-apply with the rewrite: %w", err)
	}
	return p, listen, nil
}

func benchKafka(ctx context.Context, c config) ([]row, error) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, kafkaTopic))
	if err != nil {
		return nil, err
	}
	defer cluster.Close()
	direct := cluster.ListenAddrs()[0]
	p, proxied, err := startKafkaProxy(direct)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	defer p.Shutdown(context.Background())

	value := randomBytes(c.payload) // incompressible: kgo compresses batches (snappy) by default
	var rates [2][]float64
	var lat [2][]time.Duration
	err = interleave(c.reps, func(i int) error {
		addr := []string{direct, proxied}[i]
		r, err := kafkaProduceRate(ctx, addr, value, c.kafkaRecords)
		if err != nil {
			return fmt.Errorf("produce via %s: %w", addr, err)
		}
		rates[i] = append(rates[i], r)
		ds, err := kafkaSyncLatency(ctx, addr, value, c.kafkaSync)
		if err != nil {
			return fmt.Errorf("sync produce via %s: %w", addr, err)
		}
		lat[i] = append(lat[i], ds...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	want := c.reps * (c.kafkaRecords + max(1, c.kafkaRecords/10) + c.kafkaSync + max(1, c.kafkaSync/10))
	if err := checkCount(ctx, p.AdminAddr(), "trellis_kafka_topic_records_total", `direction="produced"`, want); err != nil {
		return nil, err
	}
	return rows("Kafka produce (acks=all, batched)", "records/s", "Kafka produce, one record synchronously", rates, lat), nil
}

// kafkaClient connects through seed and checks that every broker the
// client learns about is seed itself (so proxied traffic stays proxied).
func kafkaClient(ctx context.Context, seed string) (*kgo.Client, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seed), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic(kafkaTopic))
	if err != nil {
		return nil, err
	}
	brokers, err := kgoBrokers(ctx, cl)
	if err != nil {
		cl.Close()
		return nil, err
	}
	for _, b := range brokers {
		if b != seed {
			cl.Close()
			return nil, fmt.Errorf("metadata names broker %s, want only %s", b, seed)
		}
	}
	return cl, nil
}

// kafkaProduceRate produces n records asynchronously with kgo's default
// batching (after a warm-up of n/10) and returns records per second up to
// the last acknowledgement.
func kafkaProduceRate(ctx context.Context, addr string, value []byte, n int) (float64, error) {
	cl, err := kafkaClient(ctx, addr)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	produce := func(n int) error {
		var (
			mu    sync.Mutex
			first error
			wg    sync.WaitGroup
		)
		wg.Add(n)
		for range n {
			cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
				if err != nil {
					mu.Lock()
					first = cmpOr(first, err)
					mu.Unlock()
				}
				wg.Done()
			})
		}
		wg.Wait()
		return first
	}
	if err := produce(max(1, n/10)); err != nil {
		return 0, err
	}
	start := time.Now()
	if err := produce(n); err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// kafkaSyncLatency produces n records one at a time, each waiting for its
// acknowledgement (after a warm-up of n/10), and returns their latencies.
func kafkaSyncLatency(ctx context.Context, addr string, value []byte, n int) ([]time.Duration, error) {
	cl, err := kafkaClient(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	for range max(1, n/10) {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
			return nil, err
		}
	}
	ds := make([]time.Duration, n)
	for i := range ds {
		start := time.Now()
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
			return nil, err
		}
		ds[i] = time.Since(start)
	}
	return ds, nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// kgoBrokers asks for metadata and returns the brokers' advertised
// host:port.
func kgoBrokers(ctx context.Context, cl *kgo.Client) ([]string, error) {
	req := kmsg.NewPtrMetadataRequest()
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(kafkaTopic)
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	var out []string
	for _, b := range resp.Brokers {
		out = append(out, net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))))
	}
	return out, nil
}
