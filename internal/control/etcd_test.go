package control

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	etcdstore "github.com/trellis-mesh/trellis/internal/store/etcd"
	"github.com/trellis-mesh/trellis/internal/store/etcd/etcdtest"
)

// etcdStore opens a store on endpoints under prefix with its own client.
func etcdStore(t *testing.T, endpoints []string, prefix string) *etcdstore.Store {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	s := etcdstore.New(context.Background(), cli, prefix)
	t.Cleanup(func() { s.Close(); cli.Close() })
	return s
}

// TestReplicasOnEtcd: two replicas share one etcd. A write through either
// reaches the proxies of both; a proxy whose replica stops moves to the
// other and is registered there.
func TestReplicasOnEtcd(t *testing.T) {
	eps := etcdtest.Start(t)
	r1, stop1 := startOn(t, etcdStore(t, eps, "/trellis"), "replica-1", time.Minute)
	r2, _ := startOn(t, etcdStore(t, eps, "/trellis"), "replica-2", time.Minute)

	// Written through replica 2, seen by replica 1's proxy.
	applyDocs(t, r2, base)
	caughtUp(t, r1)
	a := connect(t, r1.xdsAddr(), dataplaneNode(t, "default/a-1", "default", dpA), true)
	x := connect(t, r2.xdsAddr(), dataplaneNode(t, "default/x-2", "default", dpX), true)
	synced(t, a)
	synced(t, x)
	// x-2 registered at replica 2 is an endpoint for a-1 at replica 1.
	waitFor(t, "a-1 to see x-2 (registered at the other replica)", func() bool {
		return slices.Equal(a.endpoints("default/x:80"), []string{"127.0.0.11:10080", "127.0.0.12:10080"})
	})
	v := a.version(resource.RouteType)
	applyDocs(t, r2, routeXTimeout("3s"))
	waitFor(t, "a-1 to receive the route written through replica 2", func() bool { return a.version(resource.RouteType) != v })
	if dp := stored(t, r2, "default", "a-1"); dp.Status.ControlPlane != "replica-1" {
		t.Errorf("a-1 controlPlane %q, want replica-1", dp.Status.ControlPlane)
	}

	// Replica 1 stops; its proxy reconnects to replica 2.
	stop1()
	<-a.done
	a = connect(t, r2.xdsAddr(), dataplaneNode(t, "default/a-1", "default", dpA), true)
	synced(t, a)
	waitFor(t, "a-1 registered at replica 2", func() bool {
		dp := stored(t, r2, "default", "a-1")
		cond := condition(dp, ConditionReady)
		return dp.Status.ControlPlane == "replica-2" && dp.Status.Connected && cond != nil && cond.Status == metav1.ConditionTrue
	})
	if got := a.endpoints("default/x:80"); !slices.Equal(got, []string{"127.0.0.11:10080", "127.0.0.12:10080"}) {
		t.Errorf("a-1 endpoints of x at replica 2: %v", got)
	}
}
