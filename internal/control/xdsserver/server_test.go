package xdsserver

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// statusLog records what the callbacks saw.
type statusLog struct {
	mu           sync.Mutex
	connects     []string
	disconnects  []string
	nackStatuses []TypeStatus // cluster statuses delivered with a NACK
}

func (l *statusLog) disconnected(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, d := range l.disconnects {
		if d == id {
			return true
		}
	}
	return false
}

func TestADSAckNack(t *testing.T) {
	var log statusLog
	var srv *Server
	v1 := basic(t, time.Second, "127.0.0.1:1001")
	srv = New(Options{
		OnConnect: func(ctx context.Context, n *corev3.Node) {
			log.mu.Lock()
			log.connects = append(log.connects, n.GetId())
			log.mu.Unlock()
			if _, err := srv.SetResources(n.GetId(), v1); err != nil {
				t.Errorf("SetResources on connect: %v", err)
			}
		},
		OnDisconnect: func(n *corev3.Node) {
			log.mu.Lock()
			log.disconnects = append(log.disconnects, n.GetId())
			log.mu.Unlock()
		},
		OnStatus: func(id string, st NodeStatus) {
			if ts := st.Types[resource.ClusterType]; ts.Rejected() {
				log.mu.Lock()
				log.nackStatuses = append(log.nackStatuses, ts)
				log.mu.Unlock()
			}
		},
	})
	cc := dial(t, startServer(t, srv))
	c := newADSClient(t, cc, "default/web")

	// First request: OnConnect computes the snapshot, the response follows.
	c.send(resource.ClusterType, "", "", nil, "")
	r := c.recv()
	if r.GetTypeUrl() != resource.ClusterType || len(r.GetResources()) != 1 {
		t.Fatalf("first response: %s with %d resources", r.GetTypeUrl(), len(r.GetResources()))
	}
	v1Version := r.GetVersionInfo()
	c.ack(r, nil)
	c.send(resource.EndpointType, "", "", []string{"web"}, "")
	e := c.recv()
	if e.GetTypeUrl() != resource.EndpointType {
		t.Fatalf("got %s, want endpoints", e.GetTypeUrl())
	}
	c.ack(e, []string{"web"})
	waitFor(t, "cluster ACK", func() bool {
		st, _ := srv.Status("default/web")
		return st.Types[resource.ClusterType].AckedVersion == v1Version
	})
	st, ok := srv.Status("default/web")
	if !ok || !st.Connected || st.Streams != 1 || st.Node.GetCluster() != "default" {
		t.Fatalf("status = %+v, %v", st, ok)
	}
	if ts := st.Types[resource.ClusterType]; ts.SentVersion != v1Version || ts.AckTime.IsZero() || ts.Rejected() {
		t.Errorf("cluster status = %+v", ts)
	}
	log.mu.Lock()
	if len(log.connects) != 1 || log.connects[0] != "default/web" {
		t.Errorf("connects = %v", log.connects)
	}
	log.mu.Unlock()

	// Identical content: nothing changes, nothing is sent.
	if changed, err := srv.SetResources("default/web", basic(t, time.Second, "127.0.0.1:1001")); err != nil || changed {
		t.Fatalf("identical SetResources: changed=%v err=%v", changed, err)
	}
	// Only the endpoints change: only EDS is sent. The next response
	// being this EDS one also proves the identical call sent nothing.
	changed, err := srv.SetResources("default/web", basic(t, time.Second, "127.0.0.1:1002"))
	if err != nil || !changed {
		t.Fatalf("endpoint change: changed=%v err=%v", changed, err)
	}
	e2 := c.recv()
	if e2.GetTypeUrl() != resource.EndpointType || e2.GetVersionInfo() == e.GetVersionInfo() {
		t.Fatalf("after endpoint change got %s version %s", e2.GetTypeUrl(), e2.GetVersionInfo())
	}
	c.ack(e2, []string{"web"})

	// The cluster changes and the client rejects it.
	if _, err := srv.SetResources("default/web", basic(t, 2*time.Second, "127.0.0.1:1002")); err != nil {
		t.Fatal(err)
	}
	r2 := c.recv()
	if r2.GetTypeUrl() != resource.ClusterType {
		t.Fatalf("got %s, want clusters", r2.GetTypeUrl())
	}
	c.send(resource.ClusterType, v1Version, r2.GetNonce(), nil, "cluster web: bad timeout")
	waitFor(t, "cluster NACK", func() bool {
		st, _ := srv.Status("default/web")
		return st.Types[resource.ClusterType].Rejected()
	})
	st, _ = srv.Status("default/web")
	ts := st.Types[resource.ClusterType]
	if ts.NackVersion != r2.GetVersionInfo() || ts.NackError != "cluster web: bad timeout" || ts.AckedVersion != v1Version || ts.NackTime.IsZero() {
		t.Errorf("after NACK cluster status = %+v", ts)
	}
	waitFor(t, "OnStatus with the NACK", func() bool {
		log.mu.Lock()
		defer log.mu.Unlock()
		return len(log.nackStatuses) > 0 && log.nackStatuses[len(log.nackStatuses)-1].NackError == "cluster web: bad timeout"
	})

	// The rejected version is not sent again: the next cluster response is
	// the next change, which the client accepts, clearing the NACK.
	if _, err := srv.SetResources("default/web", basic(t, 3*time.Second, "127.0.0.1:1002")); err != nil {
		t.Fatal(err)
	}
	r3 := c.recv()
	if r3.GetTypeUrl() != resource.ClusterType || r3.GetVersionInfo() == r2.GetVersionInfo() {
		t.Fatalf("after NACK got %s version %s (rejected %s)", r3.GetTypeUrl(), r3.GetVersionInfo(), r2.GetVersionInfo())
	}
	c.ack(r3, nil)
	waitFor(t, "ACK after NACK", func() bool {
		st, _ := srv.Status("default/web")
		ts := st.Types[resource.ClusterType]
		return ts.AckedVersion == r3.GetVersionInfo() && !ts.Rejected()
	})

	// Disconnect.
	c.cancel()
	waitFor(t, "disconnect", func() bool {
		st, _ := srv.Status("default/web")
		return !st.Connected && log.disconnected("default/web")
	})
	if got := srv.Nodes(); len(got) != 1 || got[0] != "default/web" {
		t.Errorf("Nodes() = %v", got)
	}
	srv.Clear("default/web")
	if _, ok := srv.Status("default/web"); ok {
		t.Error("status still known after Clear")
	}
	if got := srv.Nodes(); len(got) != 0 {
		t.Errorf("Nodes() after Clear = %v", got)
	}
}

func TestSetResourcesRefusesBadSnapshots(t *testing.T) {
	srv := New(Options{})
	good := basic(t, time.Second, "127.0.0.1:1001")
	if _, err := srv.SetResources("n", good); err != nil {
		t.Fatal(err)
	}
	extraCluster := edsCluster("other", clusterv3.Cluster_ROUND_ROBIN)
	tests := []struct {
		name string
		r    Resources
		want string
	}{
		{"missing endpoints", Resources{
			Listeners: good.Listeners, Routes: good.Routes,
			Clusters: []types.Resource{good.Clusters[0], extraCluster}, Endpoints: good.Endpoints,
		}, `cluster "other": cluster load assignment "other" is missing`},
		{"unreferenced endpoints", Resources{
			Listeners: good.Listeners, Routes: good.Routes,
			Endpoints: good.Endpoints,
		}, `cluster load assignment "web": no EDS cluster names it`},
		{"missing route", Resources{
			Listeners: good.Listeners, Clusters: good.Clusters, Endpoints: good.Endpoints,
		}, `listener "web": route configuration "web" is missing`},
		{"unreferenced route", Resources{
			Routes: good.Routes, Clusters: good.Clusters, Endpoints: good.Endpoints,
		}, `route configuration "web": no listener names it`},
		{"duplicate", Resources{
			Listeners: good.Listeners, Routes: good.Routes,
			Clusters: []types.Resource{good.Clusters[0], good.Clusters[0]}, Endpoints: good.Endpoints,
		}, `cluster "web": listed twice`},
		{"wrong type", Resources{
			Listeners: good.Listeners, Routes: good.Routes,
			Clusters: good.Endpoints, Endpoints: good.Endpoints,
		}, `cluster[0]: got a ClusterLoadAssignment, want a cluster`},
		{"no name", Resources{
			Listeners: good.Listeners, Routes: good.Routes, Endpoints: good.Endpoints,
			Clusters: []types.Resource{&clusterv3.Cluster{}},
		}, `cluster[0]: empty name`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			changed, err := srv.SetResources("n", tc.r)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if changed {
				t.Error("changed = true on error")
			}
			// Nothing changed: the good snapshot is still current.
			if changed, err := srv.SetResources("n", good); err != nil || changed {
				t.Errorf("good again: changed=%v err=%v", changed, err)
			}
		})
	}
	// A refused first snapshot leaves no trace.
	if _, err := srv.SetResources("m", Resources{Endpoints: good.Endpoints}); err == nil {
		t.Fatal("no error")
	}
	if _, ok := srv.Status("m"); ok {
		t.Error("refused node is known")
	}
}

func TestVersionIgnoresOrder(t *testing.T) {
	a := edsCluster("a", clusterv3.Cluster_ROUND_ROBIN)
	b := edsCluster("b", clusterv3.Cluster_RING_HASH)
	v1, err := version(kindCluster, []types.Resource{a, b})
	if err != nil {
		t.Fatal(err)
	}
	v2, _ := version(kindCluster, []types.Resource{b, a})
	if v1 != v2 {
		t.Errorf("order changes version: %s != %s", v1, v2)
	}
	b2 := edsCluster("b", clusterv3.Cluster_ROUND_ROBIN)
	if v3, _ := version(kindCluster, []types.Resource{a, b2}); v3 == v1 {
		t.Error("content change keeps version")
	}
	if v, _ := version(kindCluster, nil); v == "" {
		t.Error("empty type has no version")
	}
}

// TestManyClients connects 50 ADS clients at once, sets every node's
// resources concurrently and waits for every ACK.
func TestManyClients(t *testing.T) {
	const n = 50
	srv := New(Options{})
	cc := dial(t, startServer(t, srv))
	clients := make([]*adsClient, n)
	for i := range clients {
		clients[i] = newADSClient(t, cc, nodeName(i))
		clients[i].send(resource.ClusterType, "", "", nil, "")
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := srv.SetResources(nodeName(i), basic(t, time.Duration(i+1)*time.Second, "127.0.0.1:1001")); err != nil {
				t.Error(err)
			}
		})
	}
	versions := make([]string, n)
	for i, c := range clients {
		wg.Go(func() {
			r := c.recv()
			versions[i] = r.GetVersionInfo()
			c.ack(r, nil)
		})
	}
	wg.Wait()
	waitFor(t, "every ACK", func() bool {
		for i := range n {
			st, _ := srv.Status(nodeName(i))
			if st.Types[resource.ClusterType].AckedVersion != versions[i] {
				return false
			}
		}
		return true
	})
	if got := len(srv.Nodes()); got != n {
		t.Errorf("%d nodes, want %d", got, n)
	}
	seen := map[string]bool{}
	for _, v := range versions {
		seen[v] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct versions for %d distinct clusters", len(seen), n)
	}
}

func nodeName(i int) string { return "default/p" + string(rune('A'+i/26)) + string(rune('a'+i%26)) }
