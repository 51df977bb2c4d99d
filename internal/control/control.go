// Package control wires the control plane: the REST API over the store, the
// reconciler that turns stored resources into per-proxy xDS snapshots, the
// xDS server proxies connect to, and the registration of the Dataplanes they
// announce.
package control

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/trellis-mesh/trellis/internal/control/client"
	"github.com/trellis-mesh/trellis/internal/control/manager"
	"github.com/trellis-mesh/trellis/internal/control/meshca"
	"github.com/trellis-mesh/trellis/internal/control/server"
	"github.com/trellis-mesh/trellis/internal/control/tap"
	"github.com/trellis-mesh/trellis/internal/control/telemetry"
	"github.com/trellis-mesh/trellis/internal/control/translator"
	"github.com/trellis-mesh/trellis/internal/control/xdsserver"
	"github.com/trellis-mesh/trellis/internal/discovery"
	"github.com/trellis-mesh/trellis/internal/discovery/file"
	"github.com/trellis-mesh/trellis/internal/store"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
	telemetrytap "github.com/trellis-mesh/trellis/internal/telemetry/tap"
)

// Defaults of Options.
const (
	DefaultAPIAddr         = "127.0.0.1:7070"
	DefaultXDSAddr         = "127.0.0.1:7071"
	DefaultDisconnectGrace = 30 * time.Second
	DefaultDrainTimeout    = 10 * time.Second
	// TokenFile is the admin token's file in the data directory.
	TokenFile = "admin.token"
)

// Options configure a control plane.
type Options struct {
	// Store holds the resources. Required; Control does not close it.
	Store store.Store
	// APIAddr and XDSAddr are the listen addresses of the REST API and of
	// the xDS gRPC endpoint. Port 0 picks a free port (see Addrs).
	APIAddr, XDSAddr string
	// DataDir holds the admin token and the client config. Empty: do not
	// write them, and serve the API without a token unless Token is set.
	DataDir string
	// Token overrides the token read from or created in DataDir.
	Token string
	// Name identifies this replica in Dataplane status. Default: host name
	// plus xDS address.
	Name string
	// DisconnectGrace is how long a proxy may stay away before its
	// Dataplane is marked not ready and its endpoints are withdrawn.
	DisconnectGrace time.Duration
	// DataplanesDir, when set, is a directory of Dataplane files the
	// control plane keeps in the store (a file discovery source).
	DataplanesDir string
	// DrainTimeout bounds a graceful stop.
	DrainTimeout time.Duration
	// LeafTTL is the lifetime of the certificates issued to proxies of
	// the implicit default mesh (no Mesh object); a Mesh's
	// spec.mtls.certificateTTL decides for its own. Zero means 24h.
	LeafTTL time.Duration
	// Telemetry tunes the golden-metrics aggregator (resolution,
	// retention, series cap; zero values are its defaults). Its Resolver
	// is set by New.
	Telemetry telemetry.Options
	// TLS says when the API and xDS listeners serve TLS: TLSAuto (the
	// default, "") on a listener that is not loopback, TLSOn on both,
	// TLSOff on neither. See docs/security.md.
	TLS TLSMode
	// TLSSANs are extra DNS names and IP addresses of the serving
	// certificate the control plane issues itself (besides the listen
	// hosts, the host name, localhost and the loopback addresses).
	TLSSANs []string
	// TLSCertFile and TLSKeyFile, when set, are the serving certificate
	// (PEM, chain first) and key to use instead of issuing one.
	TLSCertFile, TLSKeyFile string
	Logger                  *slog.Logger
}

// Control is a running control-plane replica.
type Control struct {
	opts  Options
	log   *slog.Logger
	store store.Store
	mgr   *manager.Manager
	xds   *xdsserver.Server
	rec   *reconciler
	reg   *registrar
	live  *liveness
	ca    *meshca.Manager
	// ensuring holds the meshes whose CA is being created.
	ensuring sync.Map
	prom     *prometheus.Registry
	stats    *telemetry.Aggregator
	tap      *tap.Hub
	now      func() time.Time
	ctx      context.Context

	apiLn, xdsLn net.Listener
	token        string
	// tls is the serving certificate, nil when both listeners are
	// plaintext; apiTLS and xdsTLS say which listeners use it.
	tls            *servingTLS
	apiTLS, xdsTLS bool
}

// New validates opts, binds both listeners and prepares the data directory;
// Run serves.
func New(opts Options) (*Control, error) {
	if opts.Store == nil {
		return nil, errors.New("control: a store is required")
	}
	if opts.APIAddr == "" {
		opts.APIAddr = DefaultAPIAddr
	}
	if opts.XDSAddr == "" {
		opts.XDSAddr = DefaultXDSAddr
	}
	if opts.DisconnectGrace <= 0 {
		opts.DisconnectGrace = DefaultDisconnectGrace
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = DefaultDrainTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	switch opts.TLS {
	case "":
		opts.TLS = TLSAuto
	case TLSAuto, TLSOn, TLSOff:
	default:
		return nil, fmt.Errorf("control: TLS mode %q: want auto, on or off", opts.TLS)
	}
	c := &Control{opts: opts, log: opts.Logger, store: opts.Store, mgr: manager.New(opts.Store), now: time.Now, ctx: context.Background()}
	var err error
	if c.token, err = c.prepareDataDir(); err != nil {
		return nil, err
	}
	if c.apiLn, err = net.Listen("tcp", opts.APIAddr); err != nil {
		return nil, fmt.Errorf("api listener: %w", err)
	}
	if c.xdsLn, err = net.Listen("tcp", opts.XDSAddr); err != nil {
		c.apiLn.Close()
		return nil, fmt.Errorf("xds listener: %w", err)
	}
	if err := c.setupTLS(); err != nil {
		c.apiLn.Close()
		c.xdsLn.Close()
		return nil, err
	}
	if c.opts.Name == "" {
		host, _ := os.Hostname()
		c.opts.Name = host + "@" + c.xdsLn.Addr().String()
	}
	c.reg = &registrar{c: c}
	c.live = newLiveness(c)
	c.xds = xdsserver.New(xdsserver.Options{
		OnConnect:    c.reg.connect,
		OnDisconnect: c.reg.disconnect,
		OnStatus:     c.reg.status,
		Logger:       c.log,
	})
	c.rec = newReconciler(c.store, c.xds, c.log)
	c.prom = prometheus.NewRegistry()
	c.prom.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	topts := opts.Telemetry
	topts.Resolver = meshResolver{c.rec}
	if c.stats, err = telemetry.New(topts); err != nil {
		c.apiLn.Close()
		c.xdsLn.Close()
		return nil, err
	}
	c.prom.MustRegister(c.stats.Collector())
	if c.tap, err = tap.New(tap.Options{Resolver: tapResolver{c.rec}, Logger: c.log}); err != nil {
		c.apiLn.Close()
		c.xdsLn.Close()
		return nil, err
	}
	if c.ca, err = meshca.New(meshca.Options{
		Store: c.store, LeafTTL: opts.LeafTTL, ProxiesBehind: c.proxiesBehindBundle,
		Gauge: metrics.NewIdentity(c.prom), Logger: c.log,
	}); err != nil {
		c.apiLn.Close()
		c.xdsLn.Close()
		return nil, err
	}
	c.rec.indexOpts = []translator.Option{translator.WithTrustBundles(c.ca.Bundle)}
	c.rec.ensureCA = c.ensureCA
	c.ca.Subscribe(func(mesh string) { go c.rec.bundleChanged(mesh) })
	if opts.DataDir != "" {
		cfg := client.Config{Server: c.APIURL(), Token: c.token}
		if c.apiTLS && c.tls.caPEM != nil {
			cfg.CAFile = filepath.Join(opts.DataDir, CAFile)
		}
		if err := client.WriteConfig(filepath.Join(opts.DataDir, client.ConfigFile), cfg); err != nil {
			c.apiLn.Close()
			c.xdsLn.Close()
			return nil, fmt.Errorf("client config: %w", err)
		}
	}
	return c, nil
}

// prepareDataDir creates the data directory and the admin token on first
// start and returns the token.
func (c *Control) prepareDataDir() (string, error) {
	if c.opts.DataDir == "" {
		return c.opts.Token, nil
	}
	// The client config goes here too, with a given token as well.
	if err := os.MkdirAll(c.opts.DataDir, 0o700); err != nil {
		return "", fmt.Errorf("data dir: %w", err)
	}
	if c.opts.Token != "" {
		return c.opts.Token, nil
	}
	path := filepath.Join(c.opts.DataDir, TokenFile)
	data, err := os.ReadFile(path)
	if err == nil {
		if tok := strings.TrimSpace(string(data)); tok != "" {
			return tok, nil
		}
		return "", fmt.Errorf("%s is empty; delete it to have a new token made", path)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	buf := make([]byte, 32)
	rand.Read(buf)
	tok := hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	c.log.Info("created the admin token", "path", path)
	return tok, nil
}

// ensureCA makes mesh's CA in the background, once at a time per mesh.
func (c *Control) ensureCA(mesh string) {
	if _, busy := c.ensuring.LoadOrStore(mesh, true); busy {
		return
	}
	go func() {
		defer c.ensuring.Delete(mesh)
		ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
		defer cancel()
		if _, err := c.ca.Ensure(ctx, mesh); err != nil && c.ctx.Err() == nil {
			c.log.Error("creating the mesh's certificate authority failed; its sidecars get no new configuration", "mesh", mesh, "error", err)
		}
	}()
}

// setupTLS decides which listeners serve TLS and makes their certificate;
// a control-plane CA of its own goes to DataDir/ca.crt for clients.
func (c *Control) setupTLS() error {
	c.apiTLS = useTLS(c.opts.TLS, c.opts.APIAddr)
	c.xdsTLS = useTLS(c.opts.TLS, c.opts.XDSAddr)
	if !c.apiTLS && !c.xdsTLS {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := loadServingTLS(ctx, c.store, c.opts.TLSCertFile, c.opts.TLSKeyFile,
		[]string{c.apiLn.Addr().String(), c.xdsLn.Addr().String(), c.opts.APIAddr, c.opts.XDSAddr}, c.opts.TLSSANs)
	if err != nil {
		return err
	}
	c.tls = st
	if st.caPEM != nil && c.opts.DataDir != "" {
		if err := os.WriteFile(filepath.Join(c.opts.DataDir, CAFile), st.caPEM, 0o644); err != nil {
			return fmt.Errorf("tls: %w", err)
		}
	}
	return nil
}

// APIURL returns the REST API's URL: https:// when it serves TLS.
func (c *Control) APIURL() string {
	if c.apiTLS {
		return "https://" + c.apiLn.Addr().String()
	}
	return "http://" + c.apiLn.Addr().String()
}

// TLS reports which listeners serve TLS, and the PEM of the control-plane
// CA that issued their certificate (nil when the user gave the
// certificate, or when neither serves TLS).
func (c *Control) TLS() (api, xds bool, caPEM []byte) {
	if c.tls == nil {
		return false, false, nil
	}
	return c.apiTLS, c.xdsTLS, c.tls.caPEM
}

// Addrs returns the bound API and xDS addresses.
func (c *Control) Addrs() (api, xds string) { return c.apiLn.Addr().String(), c.xdsLn.Addr().String() }

// Token returns the admin token ("" when the API is open).
func (c *Control) Token() string { return c.token }

// Identity returns the replica's identity state: the mesh CAs, tokens and
// trust bundles (Bundle, Subscribe).
func (c *Control) Identity() *meshca.Manager { return c.ca }

// proxiesBehindBundle counts this replica's connected proxies of mesh that
// have not acknowledged the trust bundle of the given version, the
// ProxiesBehind of a CA rotation. It assumes the SDS Secret type's xDS
// version is the bundle version (meshca.SameVersion); if the xDS server
// versions Secrets otherwise, the integrator passes the matching holds
// function here.
func (c *Control) proxiesBehindBundle(mesh, version string) int {
	return meshca.ProxiesBehind(c.xds, c.nodeMesh, mesh, meshca.SameVersion(version))
}

// nodeMesh returns the mesh of a proxy connected to this replica.
func (c *Control) nodeMesh(nodeID string) (string, bool) {
	c.rec.mu.Lock()
	defer c.rec.mu.Unlock()
	n, ok := c.rec.nodes[nodeID]
	if !ok {
		return "", false
	}
	return n.proxy.Mesh, true
}

// Ready is closed once the first full load of the store has been translated.
func (c *Control) Ready() <-chan struct{} { return c.rec.ready }

// healthSource answers the API's health endpoint (server.HealthSource).
type healthSource struct{ c *Control }

func (h healthSource) StoreRevision(ctx context.Context) (int64, error) {
	return h.c.store.Revision(ctx)
}

func (h healthSource) Ready() bool {
	select {
	case <-h.c.rec.ready:
		return true
	default:
		return false
	}
}

func (h healthSource) Replica() string { return h.c.opts.Name }

func (h healthSource) XDS() (string, bool) { return h.c.xdsLn.Addr().String(), h.c.xdsTLS }

// Proxies reports, per connected node, the types whose last sent version
// it has not acknowledged.
func (h healthSource) Proxies() []server.ProxySync {
	var out []server.ProxySync
	for _, id := range h.c.xds.Nodes() { // sorted
		st, ok := h.c.xds.Status(id)
		if !ok || !st.Connected {
			continue
		}
		p := server.ProxySync{Node: id}
		for url, ts := range st.Types {
			if ts.SentVersion != "" && ts.AckedVersion != ts.SentVersion {
				p.Behind = append(p.Behind, url)
			}
			p.Types = append(p.Types, server.TypeSync{TypeURL: url, SentVersion: ts.SentVersion, AckedVersion: ts.AckedVersion})
		}
		slices.Sort(p.Behind)
		slices.SortFunc(p.Types, func(a, b server.TypeSync) int { return strings.Compare(a.TypeURL, b.TypeURL) })
		p.InSync = len(p.Behind) == 0
		out = append(out, p)
	}
	return out
}

// Run serves until ctx ends, then stops gracefully: it closes the API,
// ends xDS streams (proxies keep their config and reconnect elsewhere) and
// returns nil, or the first serving error.
func (c *Control) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.ctx = ctx
	api := &http.Server{
		Handler:           server.New(server.Options{Manager: c.mgr, Token: c.token, Describer: c.rec, Identity: c.ca, Metrics: c.prom, Stats: c.stats, Health: healthSource{c}, Tap: c.tap, Logger: c.log}),
		ReadHeaderTimeout: 10 * time.Second,
		// Failed TLS handshakes (a client with the wrong CA) are logged
		// with the rest.
		ErrorLog: slog.NewLogLogger(c.log.Handler(), slog.LevelWarn),
	}
	gopts := []grpc.ServerOption{
		// Stop waits for the stream handlers (and the xDS callbacks they
		// run) to return, so nothing touches the store after Run.
		grpc.WaitForHandlers(true),
		grpc.MaxConcurrentStreams(1 << 20),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	if c.xdsTLS {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(c.tls.xdsTLSConfig())), grpc.StreamInterceptor(c.peerStreamInterceptor), grpc.UnaryInterceptor(c.peerUnaryInterceptor))
	}
	g := grpc.NewServer(gopts...)
	c.xds.Register(g)
	c.ca.Register(g)
	telemetry.NewService(c.stats, c.log).Register(g)
	telemetrytap.Register(g, c.tap)

	errc := make(chan error, 3)
	var wg sync.WaitGroup
	wg.Go(func() { errc <- c.rec.run(ctx) })
	wg.Go(func() { c.ca.Run(ctx) })
	wg.Go(func() {
		select {
		case <-c.rec.ready:
			c.live.run(ctx)
		case <-ctx.Done():
		}
	})
	if c.opts.DataplanesDir != "" {
		agg := &discovery.Aggregator{Sink: storeSink{c}, Log: c.log}
		src := &file.Source{Dir: c.opts.DataplanesDir, Log: c.log}
		wg.Go(func() { agg.Run(ctx, src) })
	}
	wg.Go(func() {
		serve := func() error { return api.Serve(c.apiLn) }
		if c.apiTLS {
			api.TLSConfig = c.tls.apiTLSConfig()
			serve = func() error { return api.ServeTLS(c.apiLn, "", "") }
		}
		if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("api: %w", err)
		}
	})
	wg.Go(func() {
		if err := g.Serve(c.xdsLn); err != nil {
			errc <- fmt.Errorf("xds: %w", err)
		}
	})
	c.log.Info("control plane serving", "api", c.apiLn.Addr().String(), "xds", c.xdsLn.Addr().String(), "api_tls", c.apiTLS, "xds_tls", c.xdsTLS, "name", c.opts.Name)

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	c.tap.Stop() // API tap streams end, so Shutdown need not wait them out
	sctx, scancel := context.WithTimeout(context.Background(), c.opts.DrainTimeout)
	defer scancel()
	api.Shutdown(sctx)
	// ADS streams never end on their own, so a graceful gRPC stop would
	// always wait out the bound: close them now. Proxies keep serving their
	// last configuration and reconnect (to another replica, or to this one
	// when it is back).
	g.Stop()
	wg.Wait()
	c.log.Info("control plane stopped")
	return err
}
