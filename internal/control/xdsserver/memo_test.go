package xdsserver

import (
	"runtime"
	"slices"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
)

// TestMemoForgetsCollectedMessages checks that the memo does not keep
// resources alive: once nothing else holds a message, its entry goes.
func TestMemoForgetsCollectedMessages(t *testing.T) {
	tab := &memoTable{m: map[uintptr]memoEntry{}}
	func() {
		// The messages stay reachable until the entries are counted, so
		// a collection in between cannot take any early.
		var live []types.Resource
		for i := range 100 {
			c := edsCluster("c", clusterv3.Cluster_ROUND_ROBIN)
			tab.setHash(c, uint64(i))
			l := apiListener(t, "l", "r")
			tab.setRouteNames(l, []string{"r"})
			if h, ok := tab.hash(c); !ok || h != uint64(i) {
				t.Fatalf("hash = %d, %v; want %d", h, ok, i)
			}
			live = append(live, c, l)
		}
		if n := tab.len(); n != 200 {
			t.Fatalf("%d entries, want 200", n)
		}
		runtime.KeepAlive(live)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for tab.len() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d entries left after the messages were collected", tab.len())
		}
		runtime.GC() // cleanups run after a collection; poll for them
		runtime.Gosched()
	}
}

// TestMemoKeysByIdentity checks that two listeners with the same name but
// different route configurations are not confused, and that an equal
// message that is a different object is hashed on its own.
func TestMemoKeysByIdentity(t *testing.T) {
	srv := New(Options{})
	a := basic(t, time.Second, "127.0.0.1:1001")
	if _, err := srv.SetResources("n", a); err != nil {
		t.Fatal(err)
	}
	// Same names, but the listener now reads route configuration "other".
	b := basic(t, time.Second, "127.0.0.1:1001")
	b.Listeners = []types.Resource{apiListener(t, "web", "other")}
	if _, err := srv.SetResources("n", b); err == nil {
		t.Fatal("listener naming a missing route configuration accepted")
	}
	b.Routes = []types.Resource{weightedRoute("other", map[string]uint32{"web": 1})}
	if changed, err := srv.SetResources("n", b); err != nil || !changed {
		t.Fatalf("changed=%v err=%v", changed, err)
	}
	names, ok := memo.routeNames(b.Listeners[0].(*listenerv3.Listener))
	if !ok || !slices.Equal(names, []string{"other"}) {
		t.Errorf("remembered names = %v, %v; want [other]", names, ok)
	}
	// A new cluster object with other content under the same name changes
	// the version; an equal new object does not.
	c := basic(t, 2*time.Second, "127.0.0.1:1001")
	c.Listeners, c.Routes = b.Listeners, b.Routes
	if changed, err := srv.SetResources("n", c); err != nil || !changed {
		t.Fatalf("new timeout: changed=%v err=%v", changed, err)
	}
	d := basic(t, 2*time.Second, "127.0.0.1:1001")
	d.Listeners, d.Routes = b.Listeners, b.Routes
	if changed, err := srv.SetResources("n", d); err != nil || changed {
		t.Fatalf("equal copy: changed=%v err=%v", changed, err)
	}
}
