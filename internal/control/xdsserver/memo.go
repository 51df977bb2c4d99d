package xdsserver

import (
	"runtime"
	"sync"
	"unsafe"
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
// Entries are keyed by address and hold a weak pointer to their message,
// checked on every lookup (an address may be reused once its message is
// gone); an entry is dropped when its message is garbage collected, so the
// table never keeps an old generation of resources alive.
type memoTable struct {
	mu sync.Mutex
	m  map[uintptr]memoEntry
}

type memoEntry struct {
	self     weak.Pointer[byte] // the message; nil once it is collected
	hash     uint64
	hashed   bool
	rds      []string // route configuration names of a listener
	rdsKnown bool
}

var memo = &memoTable{m: map[uintptr]memoEntry{}}

// hash returns the remembered content hash of r.
func (t *memoTable) hash(r types.Resource) (uint64, bool) {
	e := t.get(r)
	return e.hash, e.hashed
}

func (t *memoTable) setHash(r types.Resource, h uint64) {
	t.update(r, func(e *memoEntry) { e.hash, e.hashed = h, true })
}

// routeNames returns the remembered RDS names of l. The slice is shared:
// do not modify it.
func (t *memoTable) routeNames(l *listenerv3.Listener) ([]string, bool) {
	e := t.get(l)
	return e.rds, e.rdsKnown
}

func (t *memoTable) setRouteNames(l *listenerv3.Listener, names []string) {
	t.update(l, func(e *memoEntry) { e.rds, e.rdsKnown = names, true })
}

// get returns r's entry, or the zero entry.
func (t *memoTable) get(r types.Resource) memoEntry {
	p := addr(r)
	if p == nil {
		return memoEntry{}
	}
	t.mu.Lock()
	e, ok := t.m[uintptr(p)]
	t.mu.Unlock()
	if !ok || e.self.Value() != (*byte)(p) {
		return memoEntry{}
	}
	return e
}

// update changes r's entry, creating it (and the cleanup that removes it
// with r) if needed.
func (t *memoTable) update(r types.Resource, f func(*memoEntry)) {
	p := addr(r)
	if p == nil {
		return
	}
	k := uintptr(p)
	t.mu.Lock()
	e, ok := t.m[k]
	fresh := !ok || e.self.Value() != (*byte)(p)
	if fresh {
		e = memoEntry{self: weak.Make((*byte)(p))}
	}
	f(&e)
	t.m[k] = e
	t.mu.Unlock()
	if fresh {
		runtime.AddCleanup((*byte)(p), t.forget, memoKey{k, e.self})
	}
}

// memoKey is what a message's cleanup needs to find its entry, and only
// its own: a newer message at the same address has another weak pointer.
type memoKey struct {
	addr uintptr
	self weak.Pointer[byte]
}

func (t *memoTable) forget(k memoKey) {
	t.mu.Lock()
	if e, ok := t.m[k.addr]; ok && e.self == k.self {
		delete(t.m, k.addr)
	}
	t.mu.Unlock()
}

func (t *memoTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// addr is the address of r's message, or nil for a message of a kind
// SetResources does not accept.
func addr(r types.Resource) unsafe.Pointer {
	switch m := r.(type) {
	case *clusterv3.Cluster:
		return unsafe.Pointer(m)
	case *endpointv3.ClusterLoadAssignment:
		return unsafe.Pointer(m)
	case *listenerv3.Listener:
		return unsafe.Pointer(m)
	case *routev3.RouteConfiguration:
		return unsafe.Pointer(m)
	}
	return nil
}
