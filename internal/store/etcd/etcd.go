package etcd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/trellis-mesh/trellis/internal/store"
)

// watchQueue is how many received but undelivered events a watch may hold
// before it is dropped.
const watchQueue = 10_000

// Store is a store.Store in an etcd cluster. Create it with New.
type Store struct {
	c      *clientv3.Client
	res    string // "<prefix>/resources/"
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	queue  int // watchQueue; lowered by tests
}

var _ store.Store = (*Store)(nil)

// New returns a store keeping resources under prefix (for example
// "/trellis"; a trailing "/" is ignored) in the cluster client talks to.
// Watches end when ctx ends or Close is called. The client stays the
// caller's to close, after Close.
func New(ctx context.Context, client *clientv3.Client, prefix string) *Store {
	ctx, cancel := context.WithCancel(ctx)
	return &Store{c: client, res: strings.TrimRight(prefix, "/") + "/resources/", ctx: ctx, cancel: cancel, queue: watchQueue}
}

func (s *Store) key(k store.Key) string {
	return s.res + k.Kind + "/" + k.Namespace + "/" + k.Name
}

// parseKey returns the store key of an etcd key, false if it is not one.
func (s *Store) parseKey(key []byte) (store.Key, bool) {
	rest, ok := strings.CutPrefix(string(key), s.res)
	if !ok {
		return store.Key{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return store.Key{}, false
	}
	k := store.Key{Kind: parts[0], Namespace: parts[1], Name: parts[2]}
	return k, k.Validate() == nil
}

func resource(k store.Key, kv *mvccpb.KeyValue) store.Resource {
	return store.Resource{Key: k, Revision: kv.ModRevision, Value: kv.Value}
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, k store.Key) (store.Resource, error) {
	if err := k.Validate(); err != nil {
		return store.Resource{}, err
	}
	resp, err := s.c.Get(ctx, s.key(k))
	if err != nil {
		return store.Resource{}, fmt.Errorf("%v: %w", k, err)
	}
	if len(resp.Kvs) == 0 {
		return store.Resource{}, store.NotFoundError(k)
	}
	return resource(k, resp.Kvs[0]), nil
}

// List implements store.Store.
func (s *Store) List(ctx context.Context, kind string) ([]store.Resource, int64, error) {
	if err := store.ValidateKind(kind); err != nil {
		return nil, 0, err
	}
	prefix := s.res
	if kind != "" {
		prefix += kind + "/"
	}
	resp, err := s.c.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("list %q: %w", prefix, err)
	}
	out := make([]store.Resource, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if k, ok := s.parseKey(kv.Key); ok {
			out = append(out, resource(k, kv))
		}
	}
	// etcd orders by the joined key, where "/" sorts after "-" and "."; the
	// store orders by the parts.
	slices.SortFunc(out, func(a, b store.Resource) int { return a.Key.Compare(b.Key) })
	return out, resp.Header.Revision, nil
}

// Create implements store.Store.
func (s *Store) Create(ctx context.Context, k store.Key, value []byte) (store.Resource, error) {
	if err := k.Validate(); err != nil {
		return store.Resource{}, err
	}
	key := s.key(k)
	resp, err := s.c.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(value))).
		Commit()
	if err != nil {
		return store.Resource{}, fmt.Errorf("%v: %w", k, err)
	}
	if !resp.Succeeded {
		return store.Resource{}, store.ExistsError(k)
	}
	return store.Resource{Key: k, Revision: resp.Header.Revision, Value: clone(value)}, nil
}

// Update implements store.Store.
func (s *Store) Update(ctx context.Context, k store.Key, value []byte, rev int64) (store.Resource, error) {
	if err := k.Validate(); err != nil {
		return store.Resource{}, err
	}
	key := s.key(k)
	if rev == 0 {
		resp, err := s.c.Put(ctx, key, string(value))
		if err != nil {
			return store.Resource{}, fmt.Errorf("%v: %w", k, err)
		}
		return store.Resource{Key: k, Revision: resp.Header.Revision, Value: clone(value)}, nil
	}
	resp, err := s.c.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
		Then(clientv3.OpPut(key, string(value))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return store.Resource{}, fmt.Errorf("%v: %w", k, err)
	}
	if !resp.Succeeded {
		return store.Resource{}, mismatch(k, rev, resp)
	}
	return store.Resource{Key: k, Revision: resp.Header.Revision, Value: clone(value)}, nil
}

// mismatch explains a failed ModRevision comparison from its Else OpGet.
func mismatch(k store.Key, rev int64, resp *clientv3.TxnResponse) error {
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return store.NotFoundError(k)
	}
	return store.ConflictError(k, rev, kvs[0].ModRevision)
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, k store.Key, rev int64) (store.Resource, error) {
	if err := k.Validate(); err != nil {
		return store.Resource{}, err
	}
	key := s.key(k)
	if rev == 0 {
		resp, err := s.c.Delete(ctx, key, clientv3.WithPrevKV())
		if err != nil {
			return store.Resource{}, fmt.Errorf("%v: %w", k, err)
		}
		if len(resp.PrevKvs) == 0 {
			return store.Resource{}, store.NotFoundError(k)
		}
		return resource(k, resp.PrevKvs[0]), nil
	}
	resp, err := s.c.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
		Then(clientv3.OpDelete(key, clientv3.WithPrevKV())).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return store.Resource{}, fmt.Errorf("%v: %w", k, err)
	}
	if !resp.Succeeded {
		return store.Resource{}, mismatch(k, rev, resp)
	}
	prev := resp.Responses[0].GetResponseDeleteRange().GetPrevKvs()
	if len(prev) == 0 { // deleted between the compare and the delete: impossible in one txn
		return store.Resource{}, store.NotFoundError(k)
	}
	return resource(k, prev[0]), nil
}

// Revision implements store.Store: etcd's current revision.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	resp, err := s.c.Get(ctx, s.res, clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("revision: %w", err)
	}
	return resp.Header.Revision, nil
}

// Watch implements store.Store.
func (s *Store) Watch(ctx context.Context, fromRev int64) (<-chan store.Event, error) {
	if fromRev < 0 {
		return nil, fmt.Errorf("watch from revision %d: must not be negative", fromRev)
	}
	// A read at fromRev fails when the history after it may be compacted:
	// etcd keeps the compaction revision itself readable, so this refuses a
	// watch one revision earlier than etcd would, which costs the caller a
	// List. Reading at fromRev+1 would be exact but fail (and make the etcd
	// client log a warning) for the common Watch from the current revision.
	_, err := s.c.Get(ctx, s.res, clientv3.WithRev(max(fromRev, 1)), clientv3.WithCountOnly())
	switch {
	case errors.Is(err, rpctypes.ErrCompacted):
		return nil, fmt.Errorf("watch %s from revision %d: %w", s.res, fromRev, store.ErrCompacted)
	case err != nil && !errors.Is(err, rpctypes.ErrFutureRev):
		return nil, fmt.Errorf("watch %s from revision %d: %w", s.res, fromRev, err)
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	stop := context.AfterFunc(s.ctx, cancel)
	wch := s.c.Watch(wctx, s.res, clientv3.WithPrefix(), clientv3.WithRev(fromRev+1), clientv3.WithPrevKV())
	out := make(chan store.Event)
	s.wg.Go(func() {
		defer close(out)
		defer stop()
		defer cancel()
		s.relay(wctx, wch, out)
	})
	return out, nil
}

// relay translates etcd watch responses to events on out, queueing up to
// watchQueue of them so that a slow reader never stalls the etcd client.
func (s *Store) relay(ctx context.Context, wch clientv3.WatchChan, out chan<- store.Event) {
	var q []store.Event
	for {
		var (
			send chan<- store.Event
			head store.Event
		)
		if len(q) > 0 {
			send, head = out, q[0]
		}
		select {
		case resp, ok := <-wch:
			if !ok || resp.Canceled || resp.CompactRevision != 0 || resp.Err() != nil {
				return
			}
			for _, ev := range resp.Events {
				if e, ok := s.event(ev); ok {
					q = append(q, e)
				}
			}
			if len(q) > s.queue {
				return
			}
		case send <- head:
			q[0] = store.Event{}
			q = q[1:]
		case <-ctx.Done():
			return
		}
	}
}

func (s *Store) event(ev *clientv3.Event) (store.Event, bool) {
	k, ok := s.parseKey(ev.Kv.Key)
	if !ok {
		return store.Event{}, false
	}
	e := store.Event{Revision: ev.Kv.ModRevision}
	switch ev.Type {
	case clientv3.EventTypePut:
		e.Type, e.Resource = store.EventPut, resource(k, ev.Kv)
	case clientv3.EventTypeDelete:
		e.Type, e.Resource = store.EventDelete, store.Resource{Key: k}
		if ev.PrevKv != nil { // nil only if compacted away
			e.Resource = resource(k, ev.PrevKv)
		}
	default:
		return store.Event{}, false
	}
	return e, true
}

// Close stops every watch of the store and waits for their goroutines. The
// client is left open.
func (s *Store) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}

func clone(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return slices.Clone(b)
}
