package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/trellis-mesh/trellis/internal/bridge"
	"github.com/trellis-mesh/trellis/internal/proxy/admin"
	"github.com/trellis-mesh/trellis/internal/proxy/cluster"
	"github.com/trellis-mesh/trellis/internal/proxy/httpfilter/bridgefilter"
	"github.com/trellis-mesh/trellis/internal/proxy/listener"
	"github.com/trellis-mesh/trellis/internal/proxy/tlsx"
	"github.com/trellis-mesh/trellis/internal/telemetry/accesslog"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
	"github.com/trellis-mesh/trellis/internal/telemetry/tap"
	"github.com/trellis-mesh/trellis/internal/telemetry/trace"
	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

// Options configure a Proxy. The zero value is usable.
type Options struct {
	// ConfigPath is the bootstrap file Reload reads.
	ConfigPath string
	// DrainTimeout bounds how long Shutdown waits for in-flight requests
	// (default 15s).
	DrainTimeout time.Duration
	// Logger receives the proxy's logs (default: slog.Default()).
	Logger *slog.Logger
	// Version is reported by /server_info.
	Version string
}

// Proxy is one running data plane.
type Proxy struct {
	opts      Options
	log       *slog.Logger
	metrics   *metrics.Registry
	sinks     *accesslog.Sinks
	clusters  *cluster.Manager
	listeners *listener.Manager
	tracers   *trace.Manager // span exporters; outlive snapshots
	tap       *tap.Tap       // trellis tap subscriptions; outlive snapshots
	// bridge is the HTTP bridge runtime; its consumers outlive snapshots
	// and follow the bridge filter of the current one.
	bridge *bridge.Bridge
	// statsSinks push metrics to the bootstrap's stats_sinks (statsink.go).
	statsSinks statsSinks
	started    time.Time

	mu       sync.Mutex // serializes Apply
	current  atomic.Pointer[snapshot]
	draining atomic.Bool
	hcFailed atomic.Bool

	adminLn  net.Listener
	adminSrv *http.Server
}

type snapshot struct {
	bootstrap *bootstrapv3.Bootstrap
	clusters  *cluster.Set
	version   int
	applied   time.Time
}

// New returns a Proxy with no configuration.
func New(opts Options) *Proxy {
	if opts.DrainTimeout == 0 {
		opts.DrainTimeout = 15 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	reg := metrics.New()
	p := &Proxy{
		opts: opts, log: opts.Logger, metrics: reg, sinks: accesslog.NewSinks(),
		clusters: cluster.NewManager(reg, opts.Logger), started: time.Now(),
	}
	p.tracers = trace.NewManager(opts.Logger)
	p.tap = tap.New(0)
	p.bridge = bridge.New(bridge.Options{Registerer: reg.Prom, Log: opts.Logger})
	reg.Prom.MustRegister(bridgefilter.SubscriptionsCollector(p.bridge))
	reg.Prom.MustRegister(&mtlsCollector{p: p})
	p.listeners = listener.NewManager(opts.Logger, reg)
	p.listeners.DrainTimeout = opts.DrainTimeout
	return p
}

// Apply builds b into a snapshot and makes it current. On error nothing
// changes. The admin listener is started with the first configuration; its
// address cannot change afterwards.
func (p *Proxy) Apply(b *bootstrapv3.Bootstrap) error {
	return p.apply(b, false)
}

// Validate builds b as Apply would, without binding sockets or changing
// anything: the --validate mode.
func (p *Proxy) Validate(b *bootstrapv3.Bootstrap) error {
	return p.apply(b, true)
}

func (p *Proxy) apply(b *bootstrapv3.Bootstrap, dryRun bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	prev := p.current.Load()
	adminAddr := ""
	if sa := b.GetAdmin().GetAddress().GetSocketAddress(); sa != nil {
		adminAddr = net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue())))
	}
	if prev != nil {
		if old := prev.bootstrap.GetAdmin().GetAddress().GetSocketAddress(); !sameAdmin(old.GetAddress(), old.GetPortValue(), b) {
			return errors.New("admin.address: cannot change on reload (restart the proxy)")
		}
	}

	sr := b.GetStaticResources()
	secrets := tlsx.Secrets{}
	for i, s := range sr.GetSecrets() {
		if s.GetName() == "" {
			return fmt.Errorf("static_resources.secrets[%d].name: required", i)
		}
		secrets[s.GetName()] = s
	}
	set, err := p.clusters.Build(sr.GetClusters(), secrets, "static_resources.clusters")
	if err != nil {
		return err
	}
	deps := listener.Deps{Clusters: set, Secrets: secrets, Metrics: p.metrics, Sinks: p.sinks, Log: p.log}
	deps.Tracers, deps.NodeID, deps.Tap = p.tracers, b.GetNode().GetId(), p.tap
	pending := bridgefilter.NewPending(p.bridge)
	deps.Bridge = pending
	var ls []*listener.Listener
	var errs []error
	names := map[string]int{}
	for i, pl := range sr.GetListeners() {
		path := fmt.Sprintf("static_resources.listeners[%d]", i)
		if j, dup := names[pl.GetName()]; dup {
			errs = append(errs, fmt.Errorf("%s.name: duplicate listener %q (also listeners[%d])", path, pl.GetName(), j))
			continue
		}
		names[pl.GetName()] = i
		l, err := listener.Build(pl, deps)
		if err != nil {
			errs = append(errs, decode.PrefixErrors(path, err))
			continue
		}
		ls = append(ls, l)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	sinks, flush, err := checkStatsSinks(b, set)
	if err != nil {
		return err
	}
	if dryRun {
		return nil
	}
	if prev == nil && adminAddr != "" && p.adminLn == nil {
		if err := p.startAdmin(adminAddr); err != nil {
			return fmt.Errorf("admin.address: %w", err)
		}
	}
	if err := p.listeners.Apply(ls); err != nil {
		return err
	}
	p.clusters.Commit(set)
	p.tracers.Commit()
	v := 1
	if prev != nil {
		v = prev.version + 1
	}
	p.current.Store(&snapshot{bootstrap: b, clusters: set, version: v, applied: time.Now()})
	p.updateStatsSinks(b, sinks, flush)
	// Checked when its filters were built: Update fails only if the
	// brokers' configuration cannot be used at all, which it logs.
	if err := p.bridge.Update(pending.Config()); err != nil {
		p.log.Error("HTTP bridge not updated", "error", err)
	}
	p.log.Info("configuration applied", "version", v, "listeners", len(ls), "clusters", len(set.All()))
	return nil
}

func sameAdmin(addr string, port uint32, b *bootstrapv3.Bootstrap) bool {
	sa := b.GetAdmin().GetAddress().GetSocketAddress()
	return sa.GetAddress() == addr && sa.GetPortValue() == port
}

// Reload re-reads the bootstrap file and applies it.
func (p *Proxy) Reload() error {
	b, err := decode.LoadBootstrap(p.opts.ConfigPath)
	if err != nil {
		return err
	}
	return p.Apply(b)
}

// StartAdmin starts the admin interface on addr before any configuration
// is applied, so /ready answers 503 (PRE_INITIALIZING) and metrics are
// served while the proxy waits for its first configuration (from xDS). The
// first Apply then keeps this listener. It fails if the admin interface is
// already running.
func (p *Proxy) StartAdmin(addr string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.adminLn != nil {
		return errors.New("admin interface already started")
	}
	return p.startAdmin(addr)
}

// Metrics returns the proxy's metrics registry, so components beside the
// proxy (the xDS client) can register metrics served on /stats/prometheus.
func (p *Proxy) Metrics() *metrics.Registry { return p.metrics }

// Tap returns the proxy's tap: the ADS client streams its events to the
// control plane (trellis tap, docs/tap.md).
func (p *Proxy) Tap() *tap.Tap { return p.tap }

func (p *Proxy) startAdmin(addr string) error {
	ln, err := admin.Listen(addr)
	if err != nil {
		return err
	}
	p.adminLn = ln
	p.adminSrv = &http.Server{
		Handler:           admin.Handler(p, p.metrics.Prom, p.started, p.opts.Version),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = p.adminSrv.Serve(ln) }()
	return nil
}

// AdminAddr returns the bound admin address, or "" without an admin.
func (p *Proxy) AdminAddr() string {
	if p.adminLn == nil {
		return ""
	}
	return p.adminLn.Addr().String()
}

// ListenerAddrs returns each listener's bound address by name.
func (p *Proxy) ListenerAddrs() map[string]string { return p.listeners.Addrs() }

// Shutdown drains: /ready turns 503, listeners stop accepting, in-flight
// requests get up to the drain timeout (or until ctx ends), then the admin
// server stops.
func (p *Proxy) Shutdown(ctx context.Context) {
	p.draining.Store(true)
	ctx, cancel := context.WithTimeout(ctx, p.opts.DrainTimeout)
	defer cancel()
	p.listeners.Shutdown(ctx)
	p.stopStatsSinks()
	p.clusters.Close()
	_ = p.tracers.Shutdown(ctx) // flushes queued spans within the drain bound
	_ = p.bridge.Close()        // stops consuming; unsettled messages are redelivered
	if p.adminSrv != nil {
		sctx, scancel := context.WithTimeout(context.Background(), time.Second)
		_ = p.adminSrv.Shutdown(sctx)
		scancel()
	}
	_ = p.sinks.Close()
}

// State implements admin.Source.
func (p *Proxy) State() string {
	switch {
	case p.draining.Load() || p.hcFailed.Load():
		return "DRAINING"
	case p.current.Load() == nil:
		return "PRE_INITIALIZING"
	}
	return "LIVE"
}

// SetHealthCheckFailed implements admin.Source.
func (p *Proxy) SetHealthCheckFailed(v bool) { p.hcFailed.Store(v) }

// Clusters implements admin.Source.
func (p *Proxy) Clusters() []*cluster.Cluster {
	if s := p.current.Load(); s != nil {
		return s.clusters.All()
	}
	return nil
}

// ConfigDump implements admin.Source: the active bootstrap wrapped in
// Envoy's admin.v3.ConfigDump / BootstrapConfigDump JSON shape. Private keys
// of inline TLS certificates are redacted.
func (p *Proxy) ConfigDump() ([]byte, error) {
	s := p.current.Load()
	if s == nil {
		return []byte(`{"configs":[]}`), nil
	}
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(redact(s.bootstrap))
	if err != nil {
		return nil, err
	}
	out := fmt.Sprintf(`{"configs":[{"@type":"type.googleapis.com/envoy.admin.v3.BootstrapConfigDump","bootstrap":%s,"last_updated":%q}],"version":%d}`,
		b, s.applied.UTC().Format(time.RFC3339Nano), s.version)
	return []byte(out), nil
}

// redact returns b with inline private keys removed, as Envoy's config
// dump does.
func redact(b *bootstrapv3.Bootstrap) *bootstrapv3.Bootstrap {
	c := proto.Clone(b).(*bootstrapv3.Bootstrap)
	decode.RedactPrivateKeys(c)
	return c
}
