package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"

	bbolt "go.etcd.io/bbolt"

	"github.com/trellis-mesh/trellis/internal/store"
)

// replayChunk is how many history events one short read transaction loads.
const replayChunk = 256

// watcher is one Watch call. Writers push live events to its queue without
// blocking; its goroutine delivers them.
type watcher struct {
	out    chan store.Event
	notify chan struct{} // capacity 1: "queue changed"

	mu      sync.Mutex
	queue   []store.Event
	dropped bool
}

// push queues ev, or drops the watcher when limit events are already
// queued. It reports whether the watcher is still live. Called with s.mu held.
func (w *watcher) push(ev store.Event, limit int) bool {
	w.mu.Lock()
	live := !w.dropped
	if live && len(w.queue) >= limit {
		w.dropped, w.queue, live = true, nil, false
	}
	if live {
		w.queue = append(w.queue, ev)
	}
	w.mu.Unlock()
	select {
	case w.notify <- struct{}{}:
	default:
	}
	return live
}

// Watch implements store.Store. A watcher more than Options.WatchQueue live
// events behind its reader is dropped (the channel closes while ctx is live).
func (s *Store) Watch(ctx context.Context, fromRev int64) (<-chan store.Event, error) {
	if fromRev < 0 {
		return nil, fmt.Errorf("store %s: watch from revision %d: must not be negative", s.Path(), fromRev)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("store %s: closed", s.Path())
	}
	if fromRev+1 < s.first {
		return nil, fmt.Errorf("store %s: watch from revision %d: history starts at %d: %w", s.Path(), fromRev, s.first, store.ErrCompacted)
	}
	w := &watcher{out: make(chan store.Event), notify: make(chan struct{}, 1)}
	s.watchers[w] = struct{}{}
	s.wg.Add(1)
	go s.run(ctx, w, fromRev, s.rev.Load())
	return w.out, nil
}

// run replays the history (from, to] and then delivers live events (all
// above to, since w was registered at revision to; those above from) until ctx ends, the store
// closes or w is dropped.
func (s *Store) run(ctx context.Context, w *watcher, from, to int64) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.watchers, w)
		s.mu.Unlock()
		close(w.out)
	}()
	send := func(ev store.Event) bool {
		select {
		case w.out <- ev:
			return true
		case <-ctx.Done():
		case <-s.done:
		}
		return false
	}
	for next := from + 1; next <= to; {
		evs, err := s.readEvents(next, to)
		if err != nil || len(evs) == 0 || evs[0].Revision != next {
			return // compacted meanwhile (or unreadable): drop; a new Watch says which
		}
		for _, ev := range evs {
			if !send(ev) {
				return
			}
		}
		next = evs[len(evs)-1].Revision + 1
	}
	for {
		select {
		case <-w.notify:
		case <-ctx.Done():
			return
		case <-s.done:
			return
		}
		w.mu.Lock()
		q, dropped := w.queue, w.dropped
		w.queue = nil
		w.mu.Unlock()
		if dropped {
			return
		}
		for _, ev := range q {
			if ev.Revision <= from { // a Watch from a future revision
				continue
			}
			if !send(ev) {
				return
			}
		}
	}
}

// readEvents loads up to replayChunk consecutive events from revision next
// up to to, in one short read transaction.
func (s *Store) readEvents(next, to int64) ([]store.Event, error) {
	var evs []store.Event
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		end := revKey(to)
		for k, v := c.Seek(revKey(next)); k != nil && bytes.Compare(k, end) <= 0 && len(evs) < replayChunk; k, v = c.Next() {
			ev, err := decodeEvent(int64(binary.BigEndian.Uint64(k)), v)
			if err != nil {
				return err
			}
			evs = append(evs, ev)
		}
		return nil
	})
	return evs, err
}
