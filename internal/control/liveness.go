package control

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
	"github.com/trellis-mesh/trellis/internal/store"
)

// replicaKind is the store kind of replica heartbeats: records of the
// control plane itself, never served as mesh resources.
const replicaKind = "Replica"

// replicaRecord is one replica's heartbeat.
type replicaRecord struct {
	Name      string    `json:"name"`
	Heartbeat time.Time `json:"heartbeat"`
}

// liveness finds Dataplanes whose status says "connected" although no
// replica holds their stream any more, and marks them gone once they have
// been away for the grace period. That covers a proxy whose stream closed
// on this replica, a proxy that went away while this replica was down (a
// restart finds it still marked connected), and the proxies of a replica
// that died (its heartbeat stops).
type liveness struct {
	c *Control

	mu    sync.Mutex
	since map[string]time.Time // dataplane "ns/name" → first seen away
}

func newLiveness(c *Control) *liveness { return &liveness{c: c, since: map[string]time.Time{}} }

// away starts a Dataplane's grace period now (its stream just closed).
func (l *liveness) away(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.since[id]; !ok {
		l.since[id] = l.c.now()
	}
}

// intervals returns how often to sweep and to write the heartbeat, and how
// old a heartbeat may be before its replica counts as gone.
func (l *liveness) intervals() (sweep, beat, stale time.Duration) {
	g := l.c.opts.DisconnectGrace
	sweep = min(max(g/4, 50*time.Millisecond), time.Second)
	beat = min(max(g/3, 100*time.Millisecond), 5*time.Second)
	return sweep, beat, g + 2*beat
}

// run sweeps until ctx ends.
func (l *liveness) run(ctx context.Context) {
	sweep, beat, _ := l.intervals()
	tick := time.NewTicker(sweep)
	defer tick.Stop()
	var lastBeat time.Time
	for {
		if now := l.c.now(); now.Sub(lastBeat) >= beat {
			if err := l.heartbeat(ctx, now); err != nil && ctx.Err() == nil {
				l.c.log.Warn("writing this replica's heartbeat failed", "error", err)
			} else {
				lastBeat = now
			}
		}
		l.sweep(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func replicaKey(name string) store.Key {
	return store.Key{Kind: replicaKind, Name: strings.ReplaceAll(name, "/", "_")}
}

func (l *liveness) heartbeat(ctx context.Context, now time.Time) error {
	data, err := json.Marshal(replicaRecord{Name: l.c.opts.Name, Heartbeat: now.UTC()})
	if err != nil {
		return err
	}
	_, err = l.c.store.Update(ctx, replicaKey(l.c.opts.Name), data, 0)
	return err
}

// sweep looks at every Dataplane marked connected.
func (l *liveness) sweep(ctx context.Context) {
	c := l.c
	_, _, stale := l.intervals()
	now := c.now()
	me := c.opts.Name
	var alive map[string]bool // other replicas with a fresh heartbeat; read lazily
	seen := map[string]bool{}
	for _, dp := range c.rec.connectedDataplanes() {
		id := v1alpha1.NamespaceOf(dp) + "/" + dp.Name
		seen[id] = true
		owner := dp.Status.ControlPlane
		if c.rec.connected(id) {
			l.clear(id)
			continue
		}
		if owner != me {
			if alive == nil {
				alive = l.aliveReplicas(ctx, now, stale)
			}
			if alive[owner] {
				l.clear(id) // its replica serves it
				continue
			}
		}
		l.mu.Lock()
		first, ok := l.since[id]
		if !ok {
			l.since[id] = now
			first = now
		}
		l.mu.Unlock()
		if now.Sub(first) < c.opts.DisconnectGrace {
			continue
		}
		mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := c.reg.markGone(mctx, v1alpha1.NamespaceOf(dp), dp.Name, owner)
		cancel()
		if err != nil && ctx.Err() == nil {
			c.log.Error("marking a Dataplane gone failed", "node", id, "error", err)
			continue
		}
		l.clear(id)
	}
	l.mu.Lock()
	for id := range l.since {
		if !seen[id] {
			delete(l.since, id)
		}
	}
	l.mu.Unlock()
}

func (l *liveness) clear(id string) {
	l.mu.Lock()
	delete(l.since, id)
	l.mu.Unlock()
}

// aliveReplicas reads the heartbeats and returns the replicas seen within
// stale.
func (l *liveness) aliveReplicas(ctx context.Context, now time.Time, stale time.Duration) map[string]bool {
	out := map[string]bool{}
	list, _, err := l.c.store.List(ctx, replicaKind)
	if err != nil {
		// Without heartbeats, trust that other replicas live: marking a
		// served proxy gone would withdraw healthy endpoints.
		l.c.log.Warn("reading replica heartbeats failed", "error", err)
		return nil
	}
	for _, res := range list {
		var r replicaRecord
		if json.Unmarshal(res.Value, &r) == nil && now.Sub(r.Heartbeat) < stale {
			out[r.Name] = true
		}
	}
	return out
}
