package xdsserver

import (
	"runtime"
	"sync"
	"weak"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
)

// memoTable remembers what SetResources derived from a resource message —
// its content hash and, for a listener, the route configurations it names —
// by the message's identity. Resources must not be modified once handed to
// SetResources, so what was derived stays true for as long as the message
// lives. The translator hands the same messages to every proxy that reads
// them (a service's cluster and load assignment, an outbound listener and
// its route configuration), so a push to a thousand proxies hashes and
// decodes each of them once rather than a thousand times.
//
// Entries are keyed by weak pointers and dropped when their message is
// garbage collected, so the table never keeps an old generation of
// resources alive.
type memoTable struct {
	mu sync.Mutex
	m  map[any]memoEntry // weak.Pointer[T] → entry
}

type memoEntry struct {
	hash     uint64
	hashed   bool
	rds      []string // route configuration names of a listener
	rdsKnown bool
}

var memo = &memoTable{m: map[any]memoEntry{}}

// hash returns the remembered content hash of r.
func (t *memoTable) hash(r types.Resource) (uint64, bool) {
	e, _ := t.get(r)
	return e.hash, e.hashed
}

func (t *memoTable) setHash(r types.Resource, h uint64) {
	t.update(r, func(e *memoEntry) { e.hash, e.hashed = h, true })
}

// routeNames returns the remembered RDS names of l. The slice is shared:
// do not modify it.
func (t *memoTable) routeNames(l *listenerv3.Listener) ([]string, bool) {
	e, _ := t.get(l)
	return e.rds, e.rdsKnown
}

func (t *memoTable) setRouteNames(l *listenerv3.Listener, names []string) {
	t.update(l, func(e *memoEntry) { e.rds, e.rdsKnown = names, true })
}

func (t *memoTable) get(r types.Resource) (memoEntry, bool) {
	k := weakKey(r)
	if k == nil {
		return memoEntry{}, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[k]
	return e, ok
}

// update changes r's entry, creating it (and the cleanup that removes it
// with r) if needed.
func (t *memoTable) update(r types.Resource, f func(*memoEntry)) {
	k := weakKey(r)
	if k == nil {
		return
	}
	t.mu.Lock()
	e, ok := t.m[k]
	f(&e)
	t.m[k] = e
	t.mu.Unlock()
	if !ok {
		addCleanup(r, t, k)
	}
}

func (t *memoTable) forget(k any) {
	t.mu.Lock()
	delete(t.m, k)
	t.mu.Unlock()
}

func (t *memoTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// weakKey is r's identity as a comparable weak pointer, or nil for a
// message of a kind SetResources does not accept.
func weakKey(r types.Resource) any {
	switch m := r.(type) {
	case *clusterv3.Cluster:
		return weak.Make(m)
	case *endpointv3.ClusterLoadAssignment:
		return weak.Make(m)
	case *listenerv3.Listener:
		return weak.Make(m)
	case *routev3.RouteConfiguration:
		return weak.Make(m)
	}
	return nil
}

func addCleanup(r types.Resource, t *memoTable, k any) {
	switch m := r.(type) {
	case *clusterv3.Cluster:
		runtime.AddCleanup(m, t.forget, k)
	case *endpointv3.ClusterLoadAssignment:
		runtime.AddCleanup(m, t.forget, k)
	case *listenerv3.Listener:
		runtime.AddCleanup(m, t.forget, k)
	case *routev3.RouteConfiguration:
		runtime.AddCleanup(m, t.forget, k)
	}
}
