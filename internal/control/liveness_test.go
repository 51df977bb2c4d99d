package control

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/trellis-mesh/trellis/internal/store"
	"github.com/trellis-mesh/trellis/internal/store/bolt"
)

// runReplica runs a control plane named name over s and returns a
// function that stops it (as a crash would for the proxies: its streams
// end, and it marks nothing).
func runReplica(t *testing.T, s store.Store, name string, grace time.Duration) (*Control, func()) {
	t.Helper()
	c, err := New(Options{Store: s, APIAddr: "127.0.0.1:0", XDSAddr: "127.0.0.1:0", Name: name,
		DisconnectGrace: grace, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("replica %s: %v", name, err)
		}
	}
	t.Cleanup(func() {
		if ctx.Err() == nil {
			stop()
		}
	})
	<-c.Ready()
	return c, stop
}

// TestDeadReplicaProxiesMarkedGone: two replicas share a store; a proxy
// connected to replica a goes away together with a. Replica b notices a's
// heartbeat stopped and marks the proxy gone after the grace period.
func TestDeadReplicaProxiesMarkedGone(t *testing.T) {
	const grace = 400 * time.Millisecond
	s, err := bolt.Open(filepath.Join(t.TempDir(), "trellis.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	a, stopA := runReplica(t, s, "a", grace)
	b, _ := runReplica(t, s, "b", grace)
	applyDocs(t, a, base)

	x := connect(t, a.xdsAddr(), dataplaneNode(t, "default/x-2", "default", dpX), true)
	waitFor(t, "x-2 to be Ready through a", conditionIs(t, b, "x-2", ConditionReady, metav1.ConditionTrue))
	if dp := stored(t, b, "default", "x-2"); dp.Status.ControlPlane != "a" {
		t.Fatalf("x-2 connected through %q, want a", dp.Status.ControlPlane)
	}
	stopA()
	x.close()
	gone := time.Now()
	waitFor(t, "b to mark x-2 gone", conditionIs(t, b, "x-2", ConditionReady, metav1.ConditionFalse))
	if d := time.Since(gone); d < grace {
		t.Errorf("x-2 marked gone %s after its replica died, before the %s grace", d, grace)
	}
}

// TestRestartMarksProxiesGoneThatLeftMeanwhile: a proxy leaves while its
// (only) control plane is down; the restarted control plane marks it gone
// after the grace period instead of keeping it Ready forever.
func TestRestartMarksProxiesGoneThatLeftMeanwhile(t *testing.T) {
	const grace = 300 * time.Millisecond
	s, err := bolt.Open(filepath.Join(t.TempDir(), "trellis.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c, stop := runReplica(t, s, "only", grace)
	applyDocs(t, c, base)
	x := connect(t, c.xdsAddr(), dataplaneNode(t, "default/x-2", "default", dpX), true)
	waitFor(t, "x-2 to be Ready", conditionIs(t, c, "x-2", ConditionReady, metav1.ConditionTrue))
	stop()
	x.close()
	c2, _ := runReplica(t, s, "only", grace)
	waitFor(t, "the restarted control plane to mark x-2 gone", conditionIs(t, c2, "x-2", ConditionReady, metav1.ConditionFalse))
}
