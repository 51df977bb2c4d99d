package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster/circuit"
	"github.com/trellis-mesh/trellis/internal/proxy/cluster/health"
	"github.com/trellis-mesh/trellis/internal/proxy/cluster/lb"
	"github.com/trellis-mesh/trellis/internal/proxy/cluster/outlier"
	"github.com/trellis-mesh/trellis/internal/proxy/tlsx"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

// Manager owns the state of upstream clusters that outlives snapshots.
type Manager struct {
	metrics *metrics.Registry
	log     *slog.Logger

	mu       sync.Mutex
	hosts    map[hostKey]*lb.Host
	pools    map[string]*pools // by cluster name, for the committed set
	pending  map[string]*pools // built but not yet committed
	breakers map[string]*circuit.Breakers
	queues   map[string]*connQueue // pending requests, by cluster name; kept like breakers
	guards   map[string]*guard
	current  *Set
	stopDNS  context.CancelFunc
}

type hostKey struct{ cluster, addr string }

// NewManager returns a Manager reporting to reg.
func NewManager(reg *metrics.Registry, log *slog.Logger) *Manager {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{
		metrics:  reg,
		log:      log,
		hosts:    map[hostKey]*lb.Host{},
		pools:    map[string]*pools{},
		pending:  map[string]*pools{},
		breakers: map[string]*circuit.Breakers{},
		queues:   map[string]*connQueue{},
		guards:   map[string]*guard{},
	}
}

// guard is the long-lived health state of one cluster: its outlier
// detector and active health checker, each running from its first Commit
// until the cluster drops it (or the manager closes).
type guard struct {
	outlier     *outlier.Detector
	stopOutlier context.CancelFunc // nil until running
	health      *health.Checker
	stopHealth  context.CancelFunc
}

func (m *Manager) guardFor(name string) *guard {
	g, ok := m.guards[name]
	if !ok {
		g = &guard{}
		m.guards[name] = g
	}
	return g
}

// onHealthChange rebuilds the pickers of the current snapshot of a cluster.
func (m *Manager) onHealthChange(name string) func() {
	return func() {
		m.mu.Lock()
		c := m.current.Get(name)
		m.mu.Unlock()
		if c != nil {
			c.HealthChanged()
		}
	}
}

// onHealthCheckPassed joins a cluster's health checker to its outlier
// detector: a host that passes an active health check may be un-ejected at
// once (outlier_detection.successful_active_health_check_uneject_host). The
// detector is looked up at each call, so one added or removed by a later
// snapshot is seen.
func (m *Manager) onHealthCheckPassed(name string) func(*lb.Host) {
	return func(h *lb.Host) {
		if !h.Ejected() {
			return // the common case: no lock
		}
		m.mu.Lock()
		var d *outlier.Detector
		if g := m.guards[name]; g != nil {
			d = g.outlier
		}
		m.mu.Unlock()
		if d != nil {
			d.HealthCheckPassed(h)
		}
	}
}

// detectorFor returns the cluster's outlier detector, creating it with cfg;
// the configuration of an existing one changes in Commit.
func (m *Manager) detectorFor(name string, cfg outlier.Config) *outlier.Detector {
	m.mu.Lock()
	defer m.mu.Unlock()
	g := m.guardFor(name)
	if g.outlier == nil {
		g.outlier = outlier.New(cfg, outlier.Options{Cluster: name, Logger: m.log, OnChange: m.onHealthChange(name),
			Metrics: metrics.NewOutlier[outlier.EjectionType](m.metrics, name)})
	}
	return g.outlier
}

// checkerFor returns the cluster's active health checker, creating it with
// cfg; the configuration of an existing one changes in Commit.
func (m *Manager) checkerFor(name string, cfg health.Config, dial func(context.Context, string) (net.Conn, error)) *health.Checker {
	m.mu.Lock()
	defer m.mu.Unlock()
	g := m.guardFor(name)
	if g.health == nil {
		g.health = health.New(cfg, health.Options{Cluster: name, Dial: dial, Logger: m.log,
			OnChange: m.onHealthChange(name), OnPass: m.onHealthCheckPassed(name)})
	}
	return g.health
}

// commitGuards starts, updates and retires outlier detectors and health
// checkers for set. The bookkeeping happens under m.mu; the calls into the
// guards happen outside it, because they may call back (OnChange) into the
// manager.
func (m *Manager) commitGuards(set *Set) {
	var later []func()
	m.mu.Lock()
	for name, g := range m.guards {
		c := set.Get(name)
		if g.outlier != nil && (c == nil || c.outlier == nil) {
			d, stop := g.outlier, g.stopOutlier
			later = append(later, func() {
				if stop != nil {
					stop()
				}
				d.SetHosts(nil) // detection removed: every host returns
			})
			g.outlier, g.stopOutlier = nil, nil
		}
		if g.health != nil && (c == nil || c.health == nil) {
			h, stop := g.health, g.stopHealth
			later = append(later, func() {
				if stop != nil {
					stop()
				}
				h.Update(health.Config{}) // checking removed: flags cleared
			})
			g.health, g.stopHealth = nil, nil
		}
		if g.outlier == nil && g.health == nil {
			delete(m.guards, name)
		}
	}
	for _, c := range set.order {
		g := m.guards[c.Name]
		if g == nil {
			continue
		}
		if c.outlier != nil {
			d, cfg, hosts := c.outlier, c.outlierCfg, hostsOf(c.Hosts())
			var ctx context.Context
			if g.stopOutlier == nil {
				ctx, g.stopOutlier = context.WithCancel(context.Background())
			}
			later = append(later, func() {
				d.Update(cfg)
				d.SetHosts(hosts)
				if ctx != nil {
					go d.Run(ctx)
				}
			})
		}
		if c.health != nil {
			h, cfg, hosts, cl := c.health, c.healthCfg, hostsOf(c.Hosts()), c
			var ctx context.Context
			if g.stopHealth == nil {
				ctx, g.stopHealth = context.WithCancel(context.Background())
			}
			later = append(later, func() {
				h.Update(cfg)
				h.SetHosts(hosts)
				// New hosts start failed without a callback: rebuild now.
				cl.HealthChanged()
				if ctx != nil {
					go h.Run(ctx)
				}
			})
		}
	}
	m.mu.Unlock()
	for _, f := range later {
		f()
	}
}

// breakersFor returns the long-lived circuit breakers of a cluster,
// creating them with limits p for a new cluster. Limits of existing
// breakers change in Commit, so a configuration that fails to build changes
// nothing.
func (m *Manager) breakersFor(name string, p circuit.Priorities) *circuit.Breakers {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.breakers[name]
	if !ok {
		b = circuit.NewBreakers(p, nil)
		m.breakers[name] = b
	}
	return b
}

// Set is the immutable set of clusters of one snapshot.
type Set struct {
	byName map[string]*Cluster
	order  []*Cluster
}

// Get returns the named cluster or nil.
func (s *Set) Get(name string) *Cluster {
	if s == nil {
		return nil
	}
	return s.byName[name]
}

// All returns the clusters in configuration order.
func (s *Set) All() []*Cluster { return s.order }

// Build makes a Set from cluster resources. path prefixes error locations
// (e.g. "static_resources.clusters"). Nothing changes for the running set
// until Commit; a failed Build leaves no trace.
func (m *Manager) Build(cs []*clusterv3.Cluster, secrets tlsx.Secrets, path string) (*Set, error) {
	m.mu.Lock()
	m.pending = map[string]*pools{}
	m.mu.Unlock()
	set := &Set{byName: make(map[string]*Cluster, len(cs))}
	var errs []error
	for i, pc := range cs {
		p := fmt.Sprintf("%s[%d]", path, i)
		if _, dup := set.byName[pc.GetName()]; dup {
			errs = append(errs, fmt.Errorf("%s.name: duplicate cluster %q", p, pc.GetName()))
			continue
		}
		c, err := m.build(pc, secrets)
		if err != nil {
			errs = append(errs, decode.PrefixErrors(p, err))
			continue
		}
		c.Stats = m.metrics.Cluster(c.Name)
		set.byName[c.Name] = c
		set.order = append(set.order, c)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// Resolve hosts: static ones now, DNS ones once synchronously so the
	// first requests find hosts (later refreshes run after Commit).
	for _, c := range set.order {
		if c.Kind == Static {
			c.setMembers(m.staticHosts(c))
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.ConnectTimeout)
		c.resolve(ctx)
		cancel()
	}
	return set, nil
}

func (m *Manager) staticHosts(c *Cluster) []HostStatus {
	var all []HostStatus
	for _, e := range c.endpoints {
		addr := net.JoinHostPort(e.host, e.port)
		all = append(all, HostStatus{Host: m.host(c.Name, addr, e.hostname), Weight: e.weight, Priority: e.priority, Locality: e.locality, LocalityWeight: e.localityWeight})
	}
	return all
}

// host returns the long-lived Host for (cluster, addr).
func (m *Manager) host(cluster, addr, hostname string) *lb.Host {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := hostKey{cluster, addr}
	if h, ok := m.hosts[k]; ok && h.Hostname == hostname {
		return h
	}
	h := lb.NewHost(addr, hostname)
	m.hosts[k] = h
	return h
}

// poolsFor returns the connection pools for a cluster with cfg, reusing the
// committed ones when the settings are unchanged.
func (m *Manager) poolsFor(name string, cfg transportConfig) *pools {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p, ok := m.pools[name]; ok && p.cfg.equal(cfg) {
		m.pending[name] = p
		return p
	}
	stats := func() *metrics.Cluster { return m.currentStats(name) }
	breaker := func() *circuit.Breaker {
		m.mu.Lock()
		b := m.breakers[name]
		m.mu.Unlock()
		if b == nil {
			return nil
		}
		return b.For(corev3.RoutingPriority_DEFAULT)
	}
	q := m.queues[name]
	if q == nil {
		q = &connQueue{}
		m.queues[name] = q
	}
	p := newPools(cfg, stats, breaker, q, m.metrics.Pending(name))
	m.pending[name] = p
	return p
}

// currentStats returns the metrics handles for a cluster's connections.
func (m *Manager) currentStats(name string) *metrics.Cluster {
	m.mu.Lock()
	set := m.current
	m.mu.Unlock()
	if c := set.Get(name); c != nil {
		return c.Stats
	}
	return m.metrics.Cluster(name)
}

// Commit makes set the current one: it starts DNS refresh for set's DNS
// clusters, stops the previous set's, and retires pools and hosts that set
// no longer uses (idle connections close; requests in flight finish).
func (m *Manager) Commit(set *Set) {
	m.mu.Lock()
	if m.stopDNS != nil {
		m.stopDNS()
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.stopDNS = cancel
	old := m.pools
	m.pools = m.pending
	m.pending = map[string]*pools{}
	m.current = set
	live := map[hostKey]bool{}
	for _, c := range set.order {
		for _, h := range c.Hosts() {
			live[hostKey{c.Name, h.Host.Address}] = true
		}
	}
	for k := range m.hosts {
		if !live[k] && set.Get(k.cluster) == nil {
			delete(m.hosts, k)
		}
	}
	m.mu.Unlock()
	for name, p := range old {
		if m.pools[name] != p {
			p.closeIdle()
		}
	}
	m.commitGuards(set)
	for _, c := range set.order {
		c.breakers.Update(c.thresholds)
		m.mu.Lock()
		q := m.queues[c.Name]
		m.mu.Unlock()
		q.released(c.breaker()) // a raised max_connections admits waiters now
		c.committed.Store(true)
		if c.dns != nil {
			go c.refreshLoop(ctx)
		}
	}
}

// Close stops DNS refresh and closes idle upstream connections.
func (m *Manager) Close() {
	m.mu.Lock()
	if m.stopDNS != nil {
		m.stopDNS()
	}
	for _, g := range m.guards {
		if g.stopOutlier != nil {
			g.stopOutlier()
		}
		if g.stopHealth != nil {
			g.stopHealth()
		}
	}
	ps := m.pools
	m.mu.Unlock()
	for _, p := range ps {
		p.closeIdle()
	}
}
