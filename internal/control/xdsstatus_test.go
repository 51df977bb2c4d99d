package control

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/trellis-mesh/trellis/internal/store"
	"github.com/trellis-mesh/trellis/internal/store/bolt"
)

func TestNACKStatus(t *testing.T) {
	c := start(t, time.Minute)
	applyDocs(t, c, base)
	a := connect(t, c.xdsAddr(), dataplaneNode(t, "default/a-1", "default", dpA), true)
	synced(t, a)

	a.nackNext(resource.RouteType, "route x: unsupported field")
	applyDocs(t, c, routeXTimeout("3s"))
	waitFor(t, "XDSAccepted False", conditionIs(t, c, "a-1", ConditionXDSAccepted, metav1.ConditionFalse))
	dp := stored(t, c, "default", "a-1")
	if cond := condition(dp, ConditionXDSAccepted); !strings.Contains(cond.Message, "route x: unsupported field") || cond.Reason != "Rejected" {
		t.Errorf("XDSAccepted %+v: want the proxy's error", cond)
	}
	if len(dp.Status.XDS) != 1 || dp.Status.XDS[0].TypeURL != resource.RouteType || dp.Status.XDS[0].NackError != "route x: unsupported field" || dp.Status.XDS[0].NackVersion == "" {
		t.Errorf("status.xds %+v: want the rejected RDS version", dp.Status.XDS)
	}
	if cond := condition(dp, ConditionReady); cond == nil || cond.Status != metav1.ConditionTrue {
		t.Errorf("Ready %+v: a rejection does not make the proxy not ready", cond)
	}

	// The next version is accepted: the rejection is cleared.
	applyDocs(t, c, routeXTimeout("4s"))
	waitFor(t, "XDSAccepted True", conditionIs(t, c, "a-1", ConditionXDSAccepted, metav1.ConditionTrue))
	if dp := stored(t, c, "default", "a-1"); len(dp.Status.XDS) != 0 {
		t.Errorf("status.xds %+v after an ACK, want empty", dp.Status.XDS)
	}
}

// countingStore counts the Gets of Dataplanes on a real store.
type countingStore struct {
	store.Store
	mu   sync.Mutex
	gets int
}

func (s *countingStore) Get(ctx context.Context, k store.Key) (store.Resource, error) {
	if k.Kind == "Dataplane" {
		s.mu.Lock()
		s.gets++
		s.mu.Unlock()
	}
	return s.Store.Get(ctx, k)
}

func (s *countingStore) dataplaneGets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets
}

// TestACKsCostNoStoreReads: ACKs that change no recorded rejection, of a
// proxy, of a proxyless client and of a node without a Dataplane, are
// answered without reading the store.
func TestACKsCostNoStoreReads(t *testing.T) {
	b, err := bolt.Open(filepath.Join(t.TempDir(), "trellis.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s := &countingStore{Store: b}
	c, err := New(Options{Store: s, APIAddr: "127.0.0.1:0", XDSAddr: "127.0.0.1:0", Name: replica})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-c.Ready()
	applyDocs(t, c, base)

	a := connect(t, c.xdsAddr(), dataplaneNode(t, "default/a-1", "default", dpA), true)
	p := connect(t, c.xdsAddr(), proxylessNode(t, "proxyless/client", "default"), false)
	p.request(resource.ListenerType, "x")
	p.request(resource.RouteType, "outbound:default/x:80")
	synced(t, a)
	waitFor(t, "the proxyless client's routes", func() bool { return p.version(resource.RouteType) != "" })
	// Let the first answers settle, then count.
	acked := func() bool {
		for _, id := range []string{"default/a-1", "proxyless/client"} {
			st, _ := c.xds.Status(id)
			if r := st.Types[resource.RouteType]; r.SentVersion == "" || r.AckedVersion != r.SentVersion {
				return false
			}
		}
		return true
	}
	waitFor(t, "the routes to be acked", acked)
	before := s.dataplaneGets()
	for _, d := range []string{"3s", "4s", "5s"} {
		av, pv := a.version(resource.RouteType), p.version(resource.RouteType)
		applyDocs(t, c, routeXTimeout(d))
		waitFor(t, "both to get and ack the new route", func() bool {
			return a.version(resource.RouteType) != av && p.version(resource.RouteType) != pv && acked()
		})
	}
	if got := s.dataplaneGets() - before; got != 0 {
		t.Errorf("%d Dataplane reads for 3 pushes and ACKs to 2 clients, want 0", got)
	}
}
