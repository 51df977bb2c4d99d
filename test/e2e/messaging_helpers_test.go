package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/twmb/franz-go/pkg/kfake"
)

// This file holds the brokers of the messaging scenario (issue 7): kfake,
// franz-go's in-process Kafka cluster that speaks the real wire protocol
// (no Kafka server can be installed on the build machines), and an
// embedded nats-server, both in the test process on 127.0.0.1:0.

// startKfake starts a kfake cluster of n brokers (broker i has node id i
// and listens on ListenAddrs()[i]) with topics seeded, 2 partitions each.
func startKfake(t *testing.T, n int, topics ...string) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(n), kfake.SeedTopics(2, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	// Partition p of every topic is led by broker p: records go to every
	// broker, so that a client that cannot reach one fails.
	for _, tp := range topics {
		for p := range int32(2) {
			if err := c.MoveTopicPartition(tp, p, p%int32(n)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return c
}

// groupOn returns a consumer group name whose coordinator in c is broker
// id: FindCoordinator then names that broker.
func groupOn(t *testing.T, c *kfake.Cluster, id int32) string {
	t.Helper()
	for i := range 1000 {
		g := fmt.Sprintf("e2e-consumers-%d", i)
		if c.CoordinatorFor(g) == id {
			return g
		}
	}
	t.Fatalf("no group coordinated by broker %d", id)
	return ""
}

// startNATS starts a nats-server on 127.0.0.1 and a random port and
// returns the port.
func startNATS(t *testing.T) int {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	return ns.Addr().(*net.TCPAddr).Port
}

// portOf is the port of a HOST:PORT.
func portOf(t *testing.T, hp string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hp)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if _, err := fmt.Sscan(p, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// freeRange returns the first of n consecutive loopback ports that were
// free a moment ago (a Kafka outbound's broker ports).
func freeRange(t *testing.T, n int) int {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := ln.Addr().(*net.TCPAddr).Port
		held := []net.Listener{ln}
		ok := base+n-1 <= 65535
		for p := base + 1; ok && p < base+n; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				break
			}
			held = append(held, l)
		}
		for _, l := range held {
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
}

// waitListening polls until every address accepts TCP connections.
func waitListening(t *testing.T, what string, addrs ...string) {
	t.Helper()
	poll(t, 30*time.Second, what, func() (bool, string) {
		for _, a := range addrs {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err != nil {
				return false, err.Error()
			}
			c.Close()
		}
		return true, ""
	})
}

// scrape returns the Prometheus text of a proxy's admin interface.
func scrape(t *testing.T, mp *meshProxy) string {
	t.Helper()
	code, body, err := status(mp.admin + "/stats/prometheus")
	if err != nil || code != 200 {
		t.Fatalf("scrape %s: %d %v", mp.admin, code, err)
	}
	return body
}

// metricSum is the sum of metricValue over the proxies' metrics.
func metricSum(t *testing.T, ps []*meshProxy, parts ...string) float64 {
	t.Helper()
	var sum float64
	for _, p := range ps {
		sum += metricValue(scrape(t, p), parts...)
	}
	return sum
}

// waitMetric polls until metricSum over ps equals want.
func waitMetric(t *testing.T, what string, want float64, ps []*meshProxy, parts ...string) {
	t.Helper()
	poll(t, 15*time.Second, what, func() (bool, string) {
		got := metricSum(t, ps, parts...)
		return got == want, fmt.Sprintf("%s = %v, want %v", strings.Join(parts, " "), got, want)
	})
}
