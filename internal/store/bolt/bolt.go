package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/trellis-mesh/trellis/internal/store"
)

// Defaults for zero Options fields.
const (
	DefaultHistory     = 10_000
	DefaultWatchQueue  = 10_000
	DefaultLockTimeout = time.Second
)

var (
	bucketResources = []byte("resources")
	bucketEvents    = []byte("events")
	bucketMeta      = []byte("meta")
	metaRevision    = []byte("revision")
	metaFirst       = []byte("first") // oldest revision still in bucketEvents
)

// Options configure Open. The zero value is the documented default.
type Options struct {
	// History is how many of the newest events are kept for Watch; a Watch
	// from before them fails with store.ErrCompacted. Zero means
	// DefaultHistory (10,000).
	History int
	// WatchQueue is how many undelivered live events a watcher may have
	// before it is dropped (its channel closed). Zero means
	// DefaultWatchQueue (10,000).
	WatchQueue int
	// LockTimeout is how long Open waits for another process to release the
	// file. Zero means DefaultLockTimeout (1 s).
	LockTimeout time.Duration
	// NoSync skips fsync after each write. A crash can then lose or corrupt
	// recent writes: for tests and benchmarks only.
	NoSync bool
}

// Store is a store.Store in one bbolt file. Create it with Open.
type Store struct {
	db   *bbolt.DB
	opts Options
	rev  atomic.Int64 // last committed revision

	mu       sync.Mutex // serialises writes, fan-out and watch registration
	first    int64      // oldest revision kept in the event log; guarded by mu
	watchers map[*watcher]struct{}
	closed   bool

	done chan struct{} // closed by Close
	wg   sync.WaitGroup
}

var _ store.Store = (*Store)(nil)

// Open opens or creates the store file at path (its directory is created
// with mode 0700 if missing). It fails, naming path, if another process holds
// the file for longer than Options.LockTimeout.
func Open(path string, opts Options) (*Store, error) {
	if opts.History <= 0 {
		opts.History = DefaultHistory
	}
	if opts.WatchQueue <= 0 {
		opts.WatchQueue = DefaultWatchQueue
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: opts.LockTimeout, NoSync: opts.NoSync})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("store %s: locked by another process (is another trellis control running with this data directory?) after waiting %v", path, opts.LockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	s := &Store{db: db, opts: opts, watchers: map[*watcher]struct{}{}, done: make(chan struct{})}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketResources, bucketEvents, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		rev, first := getInt(meta, metaRevision), getInt(meta, metaFirst)
		if first == 0 {
			first = 1
		}
		s.rev.Store(rev)
		// History may have been lowered since the last run.
		s.first, err = trim(tx, first, rev, rev-int64(opts.History)+1)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	return s, nil
}

func getInt(b *bbolt.Bucket, k []byte) int64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

// trim deletes events older than keep and returns the new oldest kept
// revision (never lower than first, never above rev+1).
func trim(tx *bbolt.Tx, first, rev, keep int64) (int64, error) {
	keep = min(keep, rev+1)
	if keep <= first {
		return first, nil
	}
	c := tx.Bucket(bucketEvents).Cursor()
	for k, _ := c.First(); k != nil && int64(binary.BigEndian.Uint64(k)) < keep; k, _ = c.Next() {
		if err := c.Delete(); err != nil {
			return first, err
		}
	}
	return keep, tx.Bucket(bucketMeta).Put(metaFirst, revKey(keep))
}

// Path returns the file the store was opened on.
func (s *Store) Path() string { return s.db.Path() }

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, k store.Key) (store.Resource, error) {
	if err := k.Validate(); err != nil {
		return store.Resource{}, err
	}
	if err := ctx.Err(); err != nil {
		return store.Resource{}, err
	}
	var r store.Resource
	err := s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketResources).Get(dbKey(k))
		if v == nil {
			return store.NotFoundError(k)
		}
		var err error
		r, err = decodeValue(k, v)
		return err
	})
	return r, err
}

// List implements store.Store.
func (s *Store) List(ctx context.Context, kind string) ([]store.Resource, int64, error) {
	if err := store.ValidateKind(kind); err != nil {
		return nil, 0, err
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	var (
		out []store.Resource
		rev int64
	)
	err := s.db.View(func(tx *bbolt.Tx) error {
		rev = getInt(tx.Bucket(bucketMeta), metaRevision)
		prefix := kindPrefix(kind)
		c := tx.Bucket(bucketResources).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			key, err := parseDBKey(k)
			if err != nil {
				return err
			}
			r, err := decodeValue(key, v)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return out, rev, nil
}

// Create implements store.Store.
func (s *Store) Create(ctx context.Context, k store.Key, value []byte) (store.Resource, error) {
	return s.write(ctx, k, value, false, func(cur *store.Resource) error {
		if cur != nil {
			return store.ExistsError(k)
		}
		return nil
	})
}

// Update implements store.Store.
func (s *Store) Update(ctx context.Context, k store.Key, value []byte, rev int64) (store.Resource, error) {
	return s.write(ctx, k, value, false, func(cur *store.Resource) error {
		switch {
		case rev == 0:
			return nil
		case cur == nil:
			return store.NotFoundError(k)
		case cur.Revision != rev:
			return store.ConflictError(k, rev, cur.Revision)
		}
		return nil
	})
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, k store.Key, rev int64) (store.Resource, error) {
	return s.write(ctx, k, nil, true, func(cur *store.Resource) error {
		switch {
		case cur == nil:
			return store.NotFoundError(k)
		case rev != 0 && cur.Revision != rev:
			return store.ConflictError(k, rev, cur.Revision)
		}
		return nil
	})
}

// write commits one change to k: a put of value, or a delete. check sees the current resource (nil if absent) and may refuse.
func (s *Store) write(ctx context.Context, k store.Key, value []byte, del bool, check func(cur *store.Resource) error) (store.Resource, error) {
	if err := k.Validate(); err != nil {
		return store.Resource{}, err
	}
	if err := ctx.Err(); err != nil {
		return store.Resource{}, err
	}
	var ev store.Event
	if !del {
		ev = store.Event{Type: store.EventPut, Resource: store.Resource{Key: k, Value: bytes.Clone(value)}}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.Resource{}, fmt.Errorf("%v: store %s is closed", k, s.Path())
	}
	rev := s.rev.Load() + 1
	first := s.first
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketResources)
		dk := dbKey(k)
		var cur *store.Resource
		if v := b.Get(dk); v != nil {
			r, err := decodeValue(k, v)
			if err != nil {
				return err
			}
			cur = &r
		}
		if err := check(cur); err != nil {
			return err
		}
		ev.Revision = rev
		if del {
			ev.Type, ev.Resource = store.EventDelete, *cur
			if err := b.Delete(dk); err != nil {
				return err
			}
		} else {
			ev.Resource.Revision = rev
			if err := b.Put(dk, encodeValue(rev, value)); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketEvents).Put(revKey(rev), encodeEvent(ev)); err != nil {
			return err
		}
		if err := tx.Bucket(bucketMeta).Put(metaRevision, revKey(rev)); err != nil {
			return err
		}
		var err error
		first, err = trim(tx, first, rev, rev-int64(s.opts.History)+1)
		return err
	})
	if err != nil {
		return store.Resource{}, err
	}
	s.rev.Store(rev)
	s.first = first
	for w := range s.watchers {
		if !w.push(ev, s.opts.WatchQueue) {
			delete(s.watchers, w)
		}
	}
	return ev.Resource, nil
}

// Revision implements store.Store.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return s.rev.Load(), nil
}

// Compact drops the watch history before rev (as etcd's Compact): a Watch
// from a revision below rev-1 then fails with store.ErrCompacted. It fails
// if rev is above the current revision. The store also compacts on its own
// to keep Options.History events.
func (s *Store) Compact(ctx context.Context, rev int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.rev.Load()
	if rev > cur {
		return fmt.Errorf("store %s: compact to revision %d: above the current revision %d", s.Path(), rev, cur)
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		first, err := trim(tx, s.first, cur, rev)
		if err == nil {
			s.first = first
		}
		return err
	})
}

// Backup writes a consistent copy of the whole database file to w, while
// the store keeps serving. The copy opens with Open like the original.
func (s *Store) Backup(w io.Writer) error {
	return s.db.View(func(tx *bbolt.Tx) error {
		_, err := tx.WriteTo(w)
		return err
	})
}

// Close closes every watch channel, waits for the watchers to stop and
// closes the file, releasing its lock.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	s.mu.Unlock()
	s.wg.Wait()
	return s.db.Close()
}
