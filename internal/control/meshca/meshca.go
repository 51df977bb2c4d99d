package meshca

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/trellis-mesh/trellis/internal/identity"
	"github.com/trellis-mesh/trellis/internal/identity/ca"
	"github.com/trellis-mesh/trellis/internal/store"
)

// Errors of Manager methods; test with errors.Is. The REST API maps them
// to HTTP status codes.
var (
	// ErrUnknownMesh: no Mesh object of that name exists (the implicit
	// "default" mesh always exists).
	ErrUnknownMesh = errors.New("unknown mesh")
	// ErrInvalid: a request field is malformed (mesh or service name, ttl,
	// CA certificate or key). The error names the field.
	ErrInvalid = errors.New("invalid request")
	// ErrNotReady: the mesh has no CA yet (it is created with the first
	// token, rotation or certificate request).
	ErrNotReady = errors.New("no CA yet")
	// ErrRotation: the requested rotation step is not possible now: the
	// phase forbids it, or what the phase waits for has not happened. The
	// error says which.
	ErrRotation = errors.New("rotation step refused")
)

// Options configure a Manager.
type Options struct {
	// Store holds the records (see the package documentation). Required.
	Store store.Store
	// LeafTTL is the lifetime of the certificates issued to the proxies
	// of a mesh without a Mesh object (the implicit default mesh); a
	// Mesh's spec.mtls.certificateTTL decides for its own. Zero means the
	// CA's default (ca.DefaultLeafTTL, 24h).
	LeafTTL time.Duration
	// ProxiesBehind counts the connected proxies of mesh whose
	// acknowledged trust bundle is not version, for rotation progress.
	// Nil means none is ever behind. The control plane passes
	// ProxiesBehind over its xDS server's node status.
	ProxiesBehind func(mesh, version string) int
	// Gauge receives the expiry of every mesh's CA certificates. Nil:
	// none is exported (warnings are still logged).
	Gauge identity.ExpiryGauge
	// ExpiryInterval is how often CA certificates are checked for
	// approaching expiry. Zero means identity.DefaultWatchInterval (1h).
	ExpiryInterval time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
}

// Manager keeps the identity state of every mesh. Create it with New,
// run it with Run.
type Manager struct {
	opts  Options
	store store.Store
	log   *slog.Logger

	mu   sync.Mutex
	cas  map[string]cached[*caEntry]  // by mesh
	keys map[string]cached[*keyEntry] // by mesh
	subs map[int]func(mesh string)
	nsub int
	auth map[time.Duration]*identity.Authority // by leaf TTL

	notifyMu sync.Mutex // serialises Subscribe callbacks
}

// cached is a parsed store record and the revision it was parsed from.
type cached[T any] struct {
	rev int64
	v   T
}

// caEntry is a mesh's CA state with its bundle encoded once for Bundle.
type caEntry struct {
	st      *ca.State
	pem     []byte
	version string
}

// New returns a Manager; Run must run for Bundle and Subscribe to follow
// other replicas' changes.
func New(opts Options) (*Manager, error) {
	if opts.Store == nil {
		return nil, errors.New("meshca: options: Store is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Manager{
		opts: opts, store: opts.Store, log: opts.Logger.With("component", "meshca"),
		cas: map[string]cached[*caEntry]{}, keys: map[string]cached[*keyEntry]{},
		subs: map[int]func(string){}, auth: map[time.Duration]*identity.Authority{},
	}
	if _, err := m.authority(opts.LeafTTL); err != nil {
		return nil, fmt.Errorf("meshca: %w", err)
	}
	return m, nil
}

// authority returns the Authority that issues leaves of ttl (0: the CA's
// default). Meshes may set their own certificate lifetime.
func (m *Manager) authority(ttl time.Duration) (*identity.Authority, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a, ok := m.auth[ttl]; ok {
		return a, nil
	}
	a, err := identity.New(identity.Options{Mesh: m.authorityMesh, LeafTTL: ttl, Logger: m.opts.Logger})
	if err != nil {
		return nil, err
	}
	m.auth[ttl] = a
	return a, nil
}

// Run follows the store's CA records into the cache (notifying
// subscribers of bundle changes) and watches CA certificates for
// approaching expiry, until ctx ends. It returns nil then.
func (m *Manager) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	interval := m.opts.ExpiryInterval
	if interval <= 0 {
		interval = identity.DefaultWatchInterval
	}
	wg.Go(func() { m.collectLeaves(ctx, interval) })
	wg.Go(func() {
		_ = identity.Watch(ctx, identity.WatchOptions{ // fails only without Certificates
			Certificates: m.caCertificates, Interval: m.opts.ExpiryInterval, Gauge: m.opts.Gauge, Logger: m.opts.Logger,
		})
	})
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := m.follow(ctx)
		if ctx.Err() != nil {
			break
		}
		m.log.Warn("store watch ended, re-listing CA records", "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	wg.Wait()
	return nil
}

func (m *Manager) follow(ctx context.Context) error {
	list, rev, err := m.store.List(ctx, kindCA)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, res := range list {
		seen[res.Key.Name] = true
		m.remember(res)
	}
	m.mu.Lock()
	var gone []string
	for mesh, c := range m.cas {
		if !seen[mesh] && c.rev <= rev {
			delete(m.cas, mesh)
			gone = append(gone, mesh)
		}
	}
	m.mu.Unlock()
	for _, mesh := range gone {
		m.notify(mesh)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, err := m.store.Watch(wctx, rev)
	if err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return errors.New("watch channel closed")
			}
			if ev.Resource.Kind != kindCA || ev.Resource.Namespace != "" {
				continue
			}
			if ev.Type == store.EventDelete {
				m.mu.Lock()
				c, ok := m.cas[ev.Resource.Name]
				drop := ok && c.rev < ev.Revision
				if drop {
					delete(m.cas, ev.Resource.Name)
				}
				m.mu.Unlock()
				if drop {
					m.notify(ev.Resource.Name)
				}
				continue
			}
			m.remember(ev.Resource)
		}
	}
}

// remember parses a CA record into the cache unless the cache already
// holds that revision or a later one, and notifies subscribers when the
// bundle changed. It returns the cached state.
func (m *Manager) remember(res store.Resource) (*ca.State, error) {
	mesh := res.Key.Name
	m.mu.Lock()
	c, ok := m.cas[mesh]
	m.mu.Unlock()
	if ok && c.rev >= res.Revision {
		return c.v.st, nil
	}
	st, err := ca.UnmarshalState(res.Value, ca.Options{LeafTTL: m.opts.LeafTTL})
	if err != nil {
		m.log.Error("stored CA state is unreadable", "mesh", mesh, "error", err)
		return nil, fmt.Errorf("mesh %q: stored CA: %w", mesh, err)
	}
	m.mu.Lock()
	c, ok = m.cas[mesh]
	if ok && c.rev >= res.Revision { // a concurrent load won
		m.mu.Unlock()
		return c.v.st, nil
	}
	b := st.Bundle()
	e := &caEntry{st: st, pem: b.PEM(), version: b.Version()}
	m.cas[mesh] = cached[*caEntry]{rev: res.Revision, v: e}
	m.mu.Unlock()
	if !ok || c.v.version != e.version || c.v.st.Phase() != st.Phase() {
		m.log.Info("mesh CA state", "mesh", mesh, "phase", st.Phase(), "bundle", st.Bundle().Version())
		m.export(mesh, st)
		m.notify(mesh)
	}
	return st, nil
}

// export sets the expiry gauge for the mesh's CA certificates at once, as
// the expiry watch does at its next check (which also deletes series of
// certificates gone).
func (m *Manager) export(mesh string, st *ca.State) {
	if m.opts.Gauge == nil {
		return
	}
	earliest := map[[2]string]time.Time{}
	for _, w := range identity.CACertificates(mesh, st) {
		k := [2]string{w.Kind, w.Service}
		if t, ok := earliest[k]; !ok || w.Cert.NotAfter.Before(t) {
			earliest[k] = w.Cert.NotAfter
		}
	}
	for k, t := range earliest {
		m.opts.Gauge.Set(k[0], mesh, k[1], t)
	}
}

// Bundle returns the PEM trust bundle of mesh in its current rotation
// phase and the bundle's version (ca.Bundle.Version: a hash of the roots,
// the same on every replica), or ok false when the mesh has no CA yet (see
// Ensure). It answers from memory without allocating; the PEM is shared
// and must not be modified. The translator sends it as the
// "trellis-trust-bundle" SDS secret (BundleSecret).
func (m *Manager) Bundle(mesh string) (pem []byte, version string, ok bool) {
	m.mu.Lock()
	c, ok := m.cas[mesh]
	m.mu.Unlock()
	if !ok {
		return nil, "", false
	}
	return c.v.pem, c.v.version, true
}

// Subscribe calls fn with a mesh's name whenever its CA state changes in
// a way proxies see (its bundle or phase; its creation or removal), on
// this replica or, through the store watch, another. Calls are serialised
// (one at a time, whatever goroutine noticed the change) and must not
// block for long; fn typically marks the mesh's proxies for recomputation
// and reads Bundle. The returned func unsubscribes.
func (m *Manager) Subscribe(fn func(mesh string)) (cancel func()) {
	m.mu.Lock()
	id := m.nsub
	m.nsub++
	m.subs[id] = fn
	m.mu.Unlock()
	return func() {
		m.mu.Lock()
		delete(m.subs, id)
		m.mu.Unlock()
	}
}

func (m *Manager) notify(mesh string) {
	m.notifyMu.Lock()
	defer m.notifyMu.Unlock()
	m.mu.Lock()
	ids := slices.Sorted(maps.Keys(m.subs))
	fns := make([]func(string), 0, len(ids))
	for _, id := range ids {
		fns = append(fns, m.subs[id])
	}
	m.mu.Unlock()
	for _, fn := range fns {
		fn(mesh)
	}
}

// Meshes returns the meshes with a CA in the cache, sorted.
func (m *Manager) Meshes() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.cas))
}

// caCertificates lists every cached mesh's CA certificates for the expiry
// watch.
func (m *Manager) caCertificates() []identity.Watched {
	m.mu.Lock()
	states := make(map[string]*ca.State, len(m.cas))
	for mesh, c := range m.cas {
		states[mesh] = c.v.st
	}
	m.mu.Unlock()
	var out []identity.Watched
	for _, mesh := range slices.Sorted(maps.Keys(states)) {
		out = append(out, identity.CACertificates(mesh, states[mesh])...)
	}
	return out
}
