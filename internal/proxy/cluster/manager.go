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
	outliers map[string]*outlier.Detector
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
		outliers: map[string]*outlier.Detector{},
	}
}

// detectorFor returns the long-lived outlier detector of a cluster,
// creating it for a cluster that has none; its configuration changes in
// Commit. Ejections rebuild the pickers of whichever snapshot of the
// cluster is current.
func (m *Manager) detectorFor(name string, cfg outlier.Config) *outlier.Detector {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.outliers[name]
	if !ok {
		d = outlier.New(cfg, outlier.Options{
			Cluster: name,
			Logger:  m.log,
			OnChange: func() {
				m.mu.Lock()
				c := m.current.Get(name)
				m.mu.Unlock()
				if c != nil {
					c.HealthChanged()
				}
			},
		})
		m.outliers[name] = d
	}
	return d
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
		all = append(all, HostStatus{Host: m.host(c.Name, addr, e.hostname), Weight: e.weight, Priority: e.priority, Locality: e.locality})
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
	p := newPools(cfg, stats, breaker)
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
	for name, d := range m.detectorsToDrop(set) {
		d.SetHosts(nil) // outlier detection removed: every host returns
		delete(m.outliers, name)
	}
	for _, c := range set.order {
		c.breakers.Update(c.thresholds)
		if c.outlier != nil {
			c.outlier.Update(c.outlierCfg)
			c.outlier.SetHosts(hostsOf(c.Hosts()))
			go c.outlier.Run(ctx)
		}
		c.committed.Store(true)
		if c.dns != nil {
			go c.refreshLoop(ctx)
		}
	}
}

// detectorsToDrop returns the detectors of clusters that no longer have
// outlier detection.
func (m *Manager) detectorsToDrop(set *Set) map[string]*outlier.Detector {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]*outlier.Detector{}
	for name, d := range m.outliers {
		if c := set.Get(name); c == nil || c.outlier == nil {
			out[name] = d
		}
	}
	return out
}

// Close stops DNS refresh and closes idle upstream connections.
func (m *Manager) Close() {
	m.mu.Lock()
	if m.stopDNS != nil {
		m.stopDNS()
	}
	ps := m.pools
	m.mu.Unlock()
	for _, p := range ps {
		p.closeIdle()
	}
}
