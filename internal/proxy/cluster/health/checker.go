package health

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net"
	"reflect"
	"sync"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster/lb"
)

// Metrics receives a checker's statistics, Envoy's
// cluster.<name>.health_check.* stats. Implementations must be safe for
// concurrent use.
type Metrics interface {
	// Attempt counts a check started (health_check.attempt).
	Attempt()
	// Success counts a passed check (health_check.success).
	Success()
	// Failure counts a failed check (health_check.failure); network says it
	// was a connection failure or timeout (health_check.network_failure).
	Failure(network bool)
	// SetHealthy sets the number of hosts passing active health checks
	// (health_check.healthy).
	SetHealthy(n int)
}

// Options are a Checker's dependencies. The zero value is usable.
type Options struct {
	// Cluster is the cluster's name: the default Host header of HTTP checks
	// and :authority of gRPC checks, as in Envoy, and a log field.
	Cluster string
	// Dial connects to a host address ("ip:port"). It is the cluster's
	// dialer: for TLS clusters it returns a *tls.Conn with the handshake
	// done, and HTTP and gRPC checks then use https. nil means a plain TCP
	// net.Dialer.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// OnChange is called when a host's verdict flips, so the cluster can
	// rebuild its picker. It is called from the checking goroutines, never
	// under the Checker's lock, possibly concurrently; it should not block.
	// nil means no call.
	OnChange func()
	// OnPass is called after every passing check of a host, once the
	// host's flag reflects the result, from the checking goroutine and
	// never under the Checker's lock. The cluster wires it to its outlier
	// detector (outlier_detection.successful_active_health_check_uneject_host).
	// nil means no call.
	OnPass func(h *lb.Host)
	// Logger receives health events. nil discards them.
	Logger *slog.Logger
	// Metrics receives the statistics. nil means none.
	Metrics Metrics
	// HasTraffic reports whether the cluster has carried traffic (Envoy:
	// upstream_cx_total was used); until it does, no_traffic_interval
	// applies. nil means the cluster always counts as having traffic.
	HasTraffic func() bool
}

// Checker actively health-checks the hosts of one cluster. It is long-lived:
// the cluster manager keeps it across configuration snapshots and feeds it
// with Update and SetHosts. Its methods are safe for concurrent use.
type Checker struct {
	opts  Options
	log   *slog.Logger
	probe func(ctx context.Context, s *session, cfg *Config) (result, error)
	rnd   func(int64) int64

	mu      sync.Mutex
	cfg     *Config
	gen     uint64 // incremented by each effective Update
	hosts   map[*lb.Host]*session
	runCtx  context.Context // set by Run
	stopped bool            // Run is returning: start no goroutine
	wg      sync.WaitGroup

	// Initialization: the hosts of the first SetHosts call, until each has
	// completed its first check (Envoy's cluster warming).
	initSet     bool
	initPending int
	initDone    chan struct{}
}

// New returns a Checker for a cluster's health check configuration. It
// checks nothing until Run.
func New(cfg Config, opts Options) *Checker {
	if opts.Dial == nil {
		var d net.Dialer
		opts.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Checker{
		opts:     opts,
		log:      log.With("component", "health", "cluster", opts.Cluster),
		rnd:      rand.Int64N,
		cfg:      &cfg,
		hosts:    map[*lb.Host]*session{},
		initDone: make(chan struct{}),
	}
	c.probe = c.check
	return c
}

// Update applies a new configuration. A configuration equal to the current
// one changes nothing. Otherwise hosts keep their verdict and counters and
// their next check is rescheduled with the new intervals. Turning checking
// off (Protocol None) marks every host as passing; turning it on checks the
// current hosts, which keep their verdict until checks decide otherwise.
func (c *Checker) Update(cfg Config) {
	var flipped bool
	c.mu.Lock()
	if reflect.DeepEqual(*c.cfg, cfg) {
		c.mu.Unlock()
		return
	}
	wasOn, on := c.cfg.Protocol != None, cfg.Protocol != None
	c.cfg = &cfg
	c.gen++
	for h, s := range c.hosts {
		switch {
		case wasOn && !on:
			s.cancel()
			c.hosts[h] = &session{host: h}
			c.initPendingDoneLocked(s)
			if h.SetFailedActiveHealthCheck(false) {
				flipped = true
			}
		case !wasOn && on:
			c.startLocked(s)
		default:
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
	}
	if !on && c.initPending > 0 {
		c.initPending = 0
		close(c.initDone)
	}
	c.reportHealthyLocked()
	c.mu.Unlock()
	if flipped && c.opts.OnChange != nil {
		c.opts.OnChange()
	}
}

// SetHosts sets the cluster's hosts. Hosts already known keep their verdict
// and schedule. New hosts start checking; while checking is on, a new host
// is marked as failing active health checks before SetHosts returns (Envoy
// starts every host of a health-checked cluster as FAILED_ACTIVE_HC), and
// its first successful check makes it healthy. Hosts no longer listed stop
// being checked; their flag is left as it is. SetHosts does not call
// OnChange for these changes: the caller builds its picker afterwards.
func (c *Checker) SetHosts(hosts []*lb.Host) {
	c.mu.Lock()
	defer c.mu.Unlock()
	on := c.cfg.Protocol != None
	first := !c.initSet
	c.initSet = true
	keep := make(map[*lb.Host]bool, len(hosts))
	for _, h := range hosts {
		keep[h] = true
		if _, ok := c.hosts[h]; ok {
			continue
		}
		s := &session{host: h}
		c.hosts[h] = s
		if on {
			h.SetFailedActiveHealthCheck(true)
			if first {
				s.initial = true
				c.initPending++
			}
			c.startLocked(s)
		}
	}
	for h, s := range c.hosts {
		if !keep[h] {
			s.cancel()
			delete(c.hosts, h)
			c.initPendingDoneLocked(s)
		}
	}
	if first && c.initPending == 0 {
		close(c.initDone)
	}
	c.reportHealthyLocked()
}

// Initialized returns a channel closed once every host of the first
// SetHosts call has completed its first check, or at once if checking is
// off or there were no hosts. The cluster manager may wait on it before
// first using the cluster, as Envoy's cluster warming waits for the first
// round of health checks.
func (c *Checker) Initialized() <-chan struct{} { return c.initDone }

// Run checks the hosts until ctx ends, then closes every health check
// connection and returns. Call it once.
func (c *Checker) Run(ctx context.Context) {
	c.mu.Lock()
	c.runCtx = ctx
	if c.cfg.Protocol != None {
		for _, s := range c.hosts {
			c.startLocked(s)
		}
	}
	c.mu.Unlock()
	<-ctx.Done()
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	c.wg.Wait()
}

// startLocked starts s's checking goroutine if Run is running.
func (c *Checker) startLocked(s *session) {
	if c.runCtx == nil || c.stopped || s.stopCtx != nil {
		return
	}
	s.stopCtx, s.stop = context.WithCancel(c.runCtx)
	s.wake = make(chan struct{}, 1)
	s.state.failed = s.host.FailedActiveHealthCheck()
	c.wg.Add(1)
	go c.loop(s)
}

// initPendingDoneLocked accounts for s no longer blocking initialization.
func (c *Checker) initPendingDoneLocked(s *session) {
	if !s.initial {
		return
	}
	s.initial = false
	c.initPending--
	if c.initPending == 0 {
		close(c.initDone)
	}
}

func (c *Checker) reportHealthyLocked() {
	if c.opts.Metrics == nil {
		return
	}
	n := 0
	for h := range c.hosts {
		if !h.FailedActiveHealthCheck() {
			n++
		}
	}
	c.opts.Metrics.SetHealthy(n)
}

func (c *Checker) config() (*Config, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg, c.gen
}

func (c *Checker) hasTraffic() bool {
	return c.opts.HasTraffic == nil || c.opts.HasTraffic()
}
