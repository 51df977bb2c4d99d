// Package discovery holds endpoint sources: things that know which
// instances (Dataplanes) exist, apart from proxies registering themselves.
// Each Source sends its full current view; the Aggregator keeps the newest
// view per source, drops views identical to the last one applied and
// coalesces a burst into one application (STYLE.md, after Traefik's
// providers).
package discovery

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

// Snapshot is a source's whole view: every Dataplane it knows. Each
// Snapshot replaces the previous one of the same source.
type Snapshot struct {
	Source     string
	Dataplanes []*v1alpha1.Dataplane
}

// Source streams its full current view.
type Source interface {
	Name() string
	// Run sends a Snapshot whenever its view changes (and once at start),
	// until ctx ends.
	Run(ctx context.Context, out chan<- Snapshot) error
}

// Sink makes a source's view true in the store: it writes the Dataplanes
// of the snapshot and removes the ones the source sent before but no
// longer does.
type Sink interface {
	Sync(ctx context.Context, snap Snapshot) error
}

// Aggregator runs sources and feeds their views to a sink.
type Aggregator struct {
	Sink Sink
	Log  *slog.Logger
	// Quiet is how long a source must stay quiet before its newest view is
	// applied. Default 100 ms.
	Quiet time.Duration
	// Retry is how long after a failed Sync it is tried again. Default 2 s.
	Retry time.Duration
}

// Run runs every source and applies their views until ctx ends.
func (a *Aggregator) Run(ctx context.Context, sources ...Source) error {
	if a.Log == nil {
		a.Log = slog.New(slog.DiscardHandler)
	}
	quiet, retry := a.Quiet, a.Retry
	if quiet <= 0 {
		quiet = 100 * time.Millisecond
	}
	if retry <= 0 {
		retry = 2 * time.Second
	}
	in := make(chan Snapshot)
	var wg sync.WaitGroup
	for _, s := range sources {
		wg.Go(func() {
			if err := s.Run(ctx, in); err != nil && ctx.Err() == nil {
				a.Log.Error("discovery source stopped", "source", s.Name(), "error", err)
			}
		})
	}
	defer wg.Wait()

	pending := map[string]Snapshot{} // newest view per source, not yet applied
	applied := map[string][32]byte{} // hash of the view last applied per source
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case s := <-in:
			pending[s.Source] = s
			timer.Reset(quiet)
		case <-timer.C:
			for name, s := range pending {
				h := hash(s)
				if prev, ok := applied[name]; ok && prev == h {
					delete(pending, name) // no-op: the same view again
					continue
				}
				if err := a.Sink.Sync(ctx, s); err != nil {
					a.Log.Error("applying a discovery view failed; will retry", "source", name, "error", err)
					timer.Reset(retry)
					continue
				}
				applied[name] = h
				delete(pending, name)
				a.Log.Info("discovery view applied", "source", name, "dataplanes", len(s.Dataplanes))
			}
		}
	}
}

// hash identifies a view by its Dataplanes' encoded documents, in name order.
func hash(s Snapshot) [32]byte {
	docs := make([]string, 0, len(s.Dataplanes))
	for _, dp := range s.Dataplanes {
		data, _ := v1alpha1.Encode(dp)
		docs = append(docs, string(data))
	}
	sort.Strings(docs)
	h := sha256.New()
	for _, d := range docs {
		h.Write([]byte(d))
		h.Write([]byte{0})
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}
