// Package etcdtest runs real etcd servers (go.etcd.io/etcd/server/v3/embed)
// inside the test process, on loopback ports, for the etcd store backend's
// tests and anything built on it.
package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// startTimeout bounds how long a server may take to become ready.
const startTimeout = 60 * time.Second

// Start runs a single-member etcd server on 127.0.0.1 with its data in
// t.TempDir(), logging nothing, stopped in t.Cleanup. It returns the client
// endpoints ("http://127.0.0.1:PORT").
func Start(t testing.TB) (endpoints []string) {
	t.Helper()
	cfg := config(t, "default")
	// A single member never dials its peer URL, so port 0 serves for both
	// listeners; the client endpoint is read back from the listener.
	cfg.ListenPeerUrls = []url.URL{{Scheme: "http", Host: "127.0.0.1:0"}}
	cfg.AdvertisePeerUrls = cfg.ListenPeerUrls
	cfg.ListenClientUrls = []url.URL{{Scheme: "http", Host: "127.0.0.1:0"}}
	cfg.AdvertiseClientUrls = cfg.ListenClientUrls
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	e := start(t, cfg)
	return []string{"http://" + e.Clients[0].Addr().String()}
}

// StartCluster runs an n-member etcd cluster on 127.0.0.1 (members named
// m0, m1, ...), each with its data in t.TempDir(), stopped in t.Cleanup. It
// returns each member's client endpoint, in member order.
//
// Peers must know each other's addresses before any of them listens, so the
// ports are chosen by listening on :0 and closing: another process could take
// one in between, which fails the test with the bind error.
func StartCluster(t testing.TB, n int) (endpoints []string) {
	t.Helper()
	if n < 1 {
		t.Fatalf("etcdtest.StartCluster: %d members", n)
	}
	ports := freePorts(t, 2*n)
	var initial []string
	cfgs := make([]*embed.Config, n)
	for i := range n {
		cfg := config(t, fmt.Sprintf("m%d", i))
		cfg.ListenPeerUrls = []url.URL{{Scheme: "http", Host: ports[2*i]}}
		cfg.AdvertisePeerUrls = cfg.ListenPeerUrls
		cfg.ListenClientUrls = []url.URL{{Scheme: "http", Host: ports[2*i+1]}}
		cfg.AdvertiseClientUrls = cfg.ListenClientUrls
		initial = append(initial, cfg.Name+"=http://"+ports[2*i])
		cfgs[i] = cfg
		endpoints = append(endpoints, "http://"+ports[2*i+1])
	}
	// Every member must be started before any becomes ready: start them
	// all, then wait.
	started := make([]*embed.Etcd, n)
	for i, cfg := range cfgs {
		cfg.InitialCluster = strings.Join(initial, ",")
		e, err := embed.StartEtcd(cfg)
		if err != nil {
			t.Fatalf("etcdtest: start member %s: %v", cfg.Name, err)
		}
		t.Cleanup(e.Close)
		started[i] = e
	}
	for i, e := range started {
		wait(t, cfgs[i].Name, e)
	}
	return endpoints
}

func config(t testing.TB, name string) *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = name
	cfg.Dir = t.TempDir()
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	// Fast elections keep cluster start-up and failover tests short.
	cfg.TickMs = 20
	cfg.ElectionMs = 200
	return cfg
}

func start(t testing.TB, cfg *embed.Config) *embed.Etcd {
	t.Helper()
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("etcdtest: start %s: %v", cfg.Name, err)
	}
	t.Cleanup(e.Close)
	wait(t, cfg.Name, e)
	return e
}

func wait(t testing.TB, name string, e *embed.Etcd) {
	t.Helper()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		t.Fatalf("etcdtest: member %s failed: %v", name, err)
	case <-time.After(startTimeout):
		t.Fatalf("etcdtest: member %s not ready within %v", name, startTimeout)
	}
}

// freePorts returns n distinct "127.0.0.1:PORT" addresses that were free a
// moment ago.
func freePorts(t testing.TB, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close() // held until all are chosen, so they are distinct
		addrs[i] = l.Addr().String()
	}
	return addrs
}
