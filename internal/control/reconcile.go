package control

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
	"github.com/trellis-mesh/trellis/internal/control/translator"
	"github.com/trellis-mesh/trellis/internal/control/xdsserver"
	"github.com/trellis-mesh/trellis/internal/store"
)

// coalesceWindow is how long the reconciler keeps collecting store events
// after the first one of a burst before it recomputes proxies, and
// coalesceMax bounds a burst that never pauses.
const (
	coalesceWindow = 10 * time.Millisecond
	coalesceMax    = 100 * time.Millisecond
)

// reconciler keeps every proxy connected to this replica in step with the
// store: it watches the store, rebuilds the translator's index on each
// (coalesced) change, and recomputes only the proxies the change affects.
type reconciler struct {
	store store.Store
	xds   *xdsserver.Server
	log   *slog.Logger

	mu    sync.Mutex
	objs  map[store.Key]v1alpha1.Object
	idx   *translator.Index
	nodes map[string]*node // proxies with an open stream to this replica
	ready chan struct{}    // closed after the first full load

	// indexOpts are the translator options of every Index (the trust
	// bundle source); ensureCA makes an mTLS mesh's CA when it has none
	// (asynchronously; the new bundle comes back through bundleChanged).
	indexOpts []translator.Option
	ensureCA  func(mesh string)
}

// node is one connected proxy.
type node struct {
	proxy translator.Proxy
	res   *translator.Resources // last translation, nil before the first
}

func newReconciler(s store.Store, x *xdsserver.Server, log *slog.Logger) *reconciler {
	return &reconciler{
		store: s, xds: x, log: log,
		objs:  map[store.Key]v1alpha1.Object{},
		idx:   translator.NewIndex(nil),
		nodes: map[string]*node{},
		ready: make(chan struct{}),
	}
}

// run follows the store until ctx ends, re-listing after a compaction or a
// broken watch.
func (r *reconciler) run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := r.follow(ctx)
		if ctx.Err() != nil {
			return nil
		}
		r.log.Warn("store watch ended, re-listing", "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return nil
}

func (r *reconciler) follow(ctx context.Context) error {
	list, rev, err := r.store.List(ctx, "")
	if err != nil {
		return err
	}
	objs := make(map[store.Key]v1alpha1.Object, len(list))
	for _, res := range list {
		if obj, ok := r.decode(res); ok {
			objs[res.Key] = obj
		}
	}
	r.mu.Lock()
	old := r.objs
	r.objs = objs
	changed := diff(old, objs)
	r.mu.Unlock()
	r.recompute(changed, true)
	select {
	case <-r.ready:
	default:
		close(r.ready)
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, err := r.store.Watch(wctx, rev)
	if err != nil {
		return err
	}
	for {
		var batch []store.Event
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return errors.New("watch channel closed")
			}
			batch = append(batch, ev)
		}
		// Coalesce a burst: keep taking events until the store is quiet
		// for coalesceWindow, or coalesceMax has passed.
		deadline := time.NewTimer(coalesceMax)
		quiet := time.NewTimer(coalesceWindow)
	burst:
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					break burst
				}
				batch = append(batch, ev)
				quiet.Reset(coalesceWindow)
			case <-quiet.C:
				break burst
			case <-deadline.C:
				break burst
			}
		}
		deadline.Stop()
		quiet.Stop()
		r.apply(batch)
	}
}

func (r *reconciler) decode(res store.Resource) (v1alpha1.Object, bool) {
	if _, ok := v1alpha1.LookupKind(res.Key.Kind); !ok {
		return nil, false // the control plane's own records (CA, tokens), not mesh resources
	}
	obj, err := v1alpha1.Decode(res.Value)
	if err != nil {
		r.log.Error("stored resource is unreadable; ignored", "key", res.Key.String(), "error", err)
		return nil, false
	}
	obj.SetResourceVersion(strconv.FormatInt(res.Revision, 10))
	return obj, true
}

// apply folds a batch of events into the object set and recomputes the
// proxies they affect. Events that leave an object as it was are no-ops.
func (r *reconciler) apply(batch []store.Event) {
	r.mu.Lock()
	next := make(map[store.Key]v1alpha1.Object, len(r.objs))
	for k, v := range r.objs {
		next[k] = v
	}
	for _, ev := range batch {
		if ev.Type == store.EventDelete {
			delete(next, ev.Resource.Key)
			continue
		}
		if obj, ok := r.decode(ev.Resource); ok {
			next[ev.Resource.Key] = obj
		}
	}
	old := r.objs
	r.objs = next
	changed := diff(old, next)
	r.mu.Unlock()
	if len(changed) > 0 {
		r.recompute(changed, false)
	}
}

// diff returns the objects (old and new versions) whose content differs.
func diff(old, cur map[store.Key]v1alpha1.Object) []v1alpha1.Object {
	var out []v1alpha1.Object
	for k, o := range old {
		n, ok := cur[k]
		if !ok {
			out = append(out, o)
			continue
		}
		if o.GetResourceVersion() != n.GetResourceVersion() {
			out = append(out, o, n)
		}
	}
	for k, n := range cur {
		if _, ok := old[k]; !ok {
			out = append(out, n)
		}
	}
	return out
}

// recompute rebuilds the index and re-translates every connected proxy that
// depends on one of changed (every proxy when all is true). The index is
// updated from the previous one, which keeps what changed cannot affect;
// a full re-list (all) builds it afresh.
func (r *reconciler) recompute(changed []v1alpha1.Object, all bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	objs := make([]v1alpha1.Object, 0, len(r.objs))
	for _, o := range r.objs {
		objs = append(objs, o)
	}
	if all {
		r.idx = translator.NewIndex(objs, r.indexOpts...)
	} else {
		r.idx = r.idx.Update(objs, changed)
	}
	ids := make([]string, 0, len(r.nodes))
	for id := range r.nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	r.ensureCAsLocked()
	change := r.idx.Change(changed)
	push := ids[:0]
	for _, id := range ids {
		n := r.nodes[id]
		if n.proxy.Dataplane != nil {
			if dp, ok := r.objs[dataplaneKey(n.proxy.Dataplane)].(*v1alpha1.Dataplane); ok {
				n.proxy.Dataplane = dp
			}
		}
		if all || n.res == nil || n.res.DependsOnChange(change) {
			push = append(push, id)
		}
	}
	r.pushAllLocked(push)
}

// pushAllLocked pushes to the nodes ids on GOMAXPROCS workers: each node's
// translation and snapshot are independent of the others', and with a
// thousand proxies a push is mostly this loop.
func (r *reconciler) pushAllLocked(ids []string) {
	workers := min(runtime.GOMAXPROCS(0), len(ids))
	if workers <= 1 {
		for _, id := range ids {
			r.pushLocked(id, r.nodes[id])
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(ids)); i = next.Add(1) - 1 {
				r.pushLocked(ids[i], r.nodes[ids[i]])
			}
		})
	}
	wg.Wait()
}

// pushLocked translates one proxy's configuration and hands it to the xDS
// server, which pushes only the resource types whose content changed.
func (r *reconciler) pushLocked(id string, n *node) {
	res, err := translator.Translate(r.idx, n.proxy)
	if err != nil {
		r.log.Error("translating a proxy's configuration failed; it keeps its last", "node", id, "error", err)
		return
	}
	n.res = res
	changed, err := r.xds.SetResources(id, xdsserver.Resources{
		Listeners: res.Listeners, Routes: res.Routes, Clusters: res.Clusters, Endpoints: res.Endpoints,
		Secrets: res.Secrets, SecretsVersion: res.SecretsVersion,
	})
	if err != nil {
		r.log.Error("a proxy's configuration is inconsistent; not pushed", "node", id, "error", err)
		return
	}
	if changed {
		r.log.Debug("configuration pushed", "node", id)
	}
	// Keep only what DependsOn needs: the xDS server holds the resources.
	res.Listeners, res.Routes, res.Clusters, res.Endpoints, res.Secrets = nil, nil, nil, nil, nil
}

// ensureCAsLocked asks for the CA of every mesh whose mutual TLS is on
// and whose trust bundle is not there yet: until it is, the translator
// refuses that mesh's sidecars' configuration (fail closed).
func (r *reconciler) ensureCAsLocked() {
	if r.ensureCA == nil {
		return
	}
	for _, o := range r.objs {
		m, ok := o.(*v1alpha1.Mesh)
		if !ok || v1alpha1.MTLSModeOf(m) == v1alpha1.MTLSDisabled {
			continue
		}
		if _, ok := r.idx.TrustBundleVersion(m.Name); !ok {
			r.ensureCA(m.Name)
		}
	}
}

// bundleChanged takes a mesh's new trust bundle (its CA was made, or a
// rotation moved on) into the index and pushes it to the proxies that
// read it.
func (r *reconciler) bundleChanged(mesh string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	objs := make([]v1alpha1.Object, 0, len(r.objs))
	for _, o := range r.objs {
		objs = append(objs, o)
	}
	r.idx = r.idx.Update(objs, nil)
	var push []string
	for id, n := range r.nodes {
		if n.res == nil || n.res.ReadsTrustBundle(mesh) {
			push = append(push, id)
		}
	}
	sort.Strings(push)
	r.pushAllLocked(push)
}

// addNode starts serving a proxy that opened a stream.
func (r *reconciler) addNode(id string, p translator.Proxy) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := &node{proxy: p}
	r.nodes[id] = n
	r.pushLocked(id, n)
}

// removeNode forgets a proxy whose last stream closed and reports whether
// it did. The xDS server reports the close outside its lock, so a new
// stream of the node may be open (and served) by now: then the node stays.
// Holding r.mu across the check and Clear orders them before or after the
// new stream's addNode.
func (r *reconciler) removeNode(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st, _ := r.xds.Status(id); st.Connected {
		return false
	}
	delete(r.nodes, id)
	r.xds.Clear(id)
	return true
}

func (r *reconciler) connected(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.nodes[id]
	return ok
}

// Affected lists the Dataplanes (as namespace/name) whose configuration
// reads obj, connected or not. It reads the store rather than r.objs, which
// trails it by a watch event and a coalescing window: a describe right after
// an apply must see what was applied.
func (r *reconciler) Affected(ctx context.Context, obj v1alpha1.Object) ([]string, error) {
	list, _, err := r.store.List(ctx, "")
	if err != nil {
		return nil, err
	}
	objs := make([]v1alpha1.Object, 0, len(list))
	for _, res := range list {
		if o, ok := r.decode(res); ok {
			objs = append(objs, o)
		}
	}
	idx := translator.NewIndex(objs, r.indexOpts...)
	mesh := v1alpha1.MeshOf(obj)
	var out []string
	for _, o := range objs {
		dp, ok := o.(*v1alpha1.Dataplane)
		if !ok || v1alpha1.MeshOf(dp) != mesh {
			continue
		}
		id := v1alpha1.NamespaceOf(dp) + "/" + dp.Name
		res, err := translator.Translate(idx, translator.Proxy{Mesh: mesh, Dataplane: dp, NodeID: id})
		if err != nil {
			continue // a proxy that cannot be configured reads nothing
		}
		if res.DependsOn(obj) || sameKey(dp, obj) {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out, nil
}

func sameKey(a, b v1alpha1.Object) bool {
	return v1alpha1.KindOf(a) == v1alpha1.KindOf(b) && a.GetName() == b.GetName() &&
		v1alpha1.NamespaceOf(a) == v1alpha1.NamespaceOf(b)
}

func dataplaneKey(dp *v1alpha1.Dataplane) store.Key {
	return store.Key{Kind: "Dataplane", Namespace: v1alpha1.NamespaceOf(dp), Name: dp.Name}
}

// connectedDataplanes returns the Dataplanes whose stored status says a
// proxy holds a stream.
func (r *reconciler) connectedDataplanes() []*v1alpha1.Dataplane {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*v1alpha1.Dataplane
	for _, o := range r.objs {
		if dp, ok := o.(*v1alpha1.Dataplane); ok && dp.Status.Connected {
			out = append(out, dp)
		}
	}
	return out
}
