package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/hcm"
	"github.com/trellis-mesh/trellis/internal/proxy/tlsx"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
)

// Manager owns listening sockets and HTTP servers across snapshots.
// Apply and Shutdown are called serially.
type Manager struct {
	log     *slog.Logger
	metrics *metrics.Registry

	mu     sync.Mutex
	active map[string]*active // by listener name

	tcpCtx    context.Context
	tcpCancel context.CancelFunc
	conns     sync.WaitGroup // TCP-proxied connections
	// DrainTimeout bounds how long retired servers may finish requests.
	DrainTimeout time.Duration
}

type serverKey struct {
	chain    string
	settings hcm.ServerSettings
}

// active is one bound listener.
type active struct {
	name    string
	addr    string
	ln      net.Listener
	cfg     atomic.Pointer[Listener]
	servers map[serverKey]*hcm.Server
	stats   *metrics.Listener
	done    chan struct{}
}

// NewManager returns a Manager with no listeners.
func NewManager(log *slog.Logger, reg *metrics.Registry) *Manager {
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{log: log, metrics: reg, active: map[string]*active{}, tcpCtx: ctx, tcpCancel: cancel, DrainTimeout: 10 * time.Second}
}

// Addrs returns the bound address of each listener by name (useful when a
// configuration asks for port 0).
func (m *Manager) Addrs() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for n, a := range m.active {
		out[n] = a.ln.Addr().String()
	}
	return out
}

// Apply makes ls the set of listeners. New sockets are bound first; if any
// bind fails, the ones bound here are closed and nothing else changes.
// Listeners that keep their name and address keep their socket and their
// connections; removed ones stop accepting and drain in the background.
func (m *Manager) Apply(ls []*Listener) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	fresh := map[string]net.Listener{}
	for _, l := range ls {
		if a, ok := m.active[l.Name]; ok && a.sameAddress(l.Address) {
			continue
		}
		ln, err := m.bind(l)
		if err != nil {
			for _, f := range fresh {
				f.Close()
			}
			return fmt.Errorf("listener %q: %w", l.Name, err)
		}
		fresh[l.Name] = ln
	}

	next := map[string]*active{}
	var retired []*hcm.Server
	for _, l := range ls {
		a, ok := m.active[l.Name]
		if ln, isNew := fresh[l.Name]; isNew {
			if ok {
				retired = append(retired, m.retire(a)...)
			}
			a = &active{name: l.Name, addr: l.Address, ln: ln, servers: map[serverKey]*hcm.Server{},
				stats: m.metrics.Listener(l.Name), done: make(chan struct{})}
			defer func(a *active) { go a.acceptLoop(m) }(a)
		}
		used := map[serverKey]*hcm.Server{}
		for _, c := range append(append([]*Chain(nil), l.chains...), l.defaultChain) {
			if c == nil || c.HCM == nil {
				continue
			}
			k := serverKey{chain: c.key, settings: c.HCM.Server}
			srv, ok := a.servers[k]
			if ok {
				srv.Update(c.HCM)
			} else {
				srv = hcm.NewServer(c.HCM, m.log)
			}
			c.server = srv
			used[k] = srv
		}
		for k, srv := range a.servers {
			if _, keep := used[k]; !keep {
				retired = append(retired, srv)
			}
		}
		a.servers = used
		a.cfg.Store(l)
		next[l.Name] = a
	}
	for name, a := range m.active {
		if _, keep := next[name]; !keep {
			retired = append(retired, m.retire(a)...)
		}
	}
	m.active = next
	for _, srv := range retired {
		go m.drain(srv)
	}
	return nil
}

// sameAddress reports whether addr is the address a was configured with or
// the one it is bound to (a listener first configured with port 0 may be
// reconfigured with the port it got).
func (a *active) sameAddress(addr string) bool {
	return a.addr == addr || a.ln.Addr().String() == addr
}

func (m *Manager) bind(l *Listener) (net.Listener, error) {
	var lc net.ListenConfig
	return lc.Listen(context.Background(), "tcp", l.Address)
}

// retire stops a listener accepting and returns its servers for draining.
func (m *Manager) retire(a *active) []*hcm.Server {
	a.ln.Close()
	var out []*hcm.Server
	for _, s := range a.servers {
		out = append(out, s)
	}
	return out
}

func (m *Manager) drain(s *hcm.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), m.DrainTimeout)
	defer cancel()
	_ = s.Shutdown(ctx)
}

// Shutdown stops accepting on every listener, then waits for in-flight HTTP
// requests and TCP connections to finish until ctx ends, when the rest are
// closed.
func (m *Manager) Shutdown(ctx context.Context) {
	m.mu.Lock()
	var servers []*hcm.Server
	var actives []*active
	for _, a := range m.active {
		servers = append(servers, m.retire(a)...)
		actives = append(actives, a)
	}
	m.active = map[string]*active{}
	m.mu.Unlock()
	for _, a := range actives {
		<-a.done
	}
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() { defer wg.Done(); _ = s.Shutdown(ctx) }()
	}
	tcpDone := make(chan struct{})
	go func() { m.conns.Wait(); close(tcpDone) }()
	select {
	case <-tcpDone:
	case <-ctx.Done():
		m.tcpCancel()
		<-tcpDone
	}
	wg.Wait()
}

func (a *active) acceptLoop(m *Manager) {
	defer close(a.done)
	var backoff time.Duration
	for {
		c, err := a.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary failure (EMFILE and the like): back off like net/http.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			m.log.Warn("accept failed", "listener", a.name, "error", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		a.stats.Connections.Inc()
		a.stats.Active.Inc()
		go a.handle(m, &trackedConn{Conn: c, gauge: a.stats})
	}
}

// handle dispatches one connection to its filter chain.
func (a *active) handle(m *Manager, c net.Conn) {
	l := a.cfg.Load()
	ci := connInfo{transport: "raw_buffer"}
	if tcp, ok := c.LocalAddr().(*net.TCPAddr); ok {
		ci.port = uint32(tcp.Port)
	}
	conn := c
	if l.inspectTLS || l.inspectHTTP {
		_ = c.SetReadDeadline(time.Now().Add(l.filtersTimeout))
		if l.inspectTLS {
			hello, replay, err := tlsx.PeekClientHello(conn)
			if err != nil {
				m.log.Debug("tls inspector", "listener", a.name, "remote", c.RemoteAddr().String(), "error", err)
				c.Close()
				return
			}
			conn = replay
			if hello.IsTLS {
				ci.transport, ci.sni, ci.alpn = "tls", hello.ServerName, hello.ALPN
			}
		}
		if l.inspectHTTP && ci.transport == "raw_buffer" {
			var proto string
			proto, conn = inspectHTTP(conn)
			if proto != "" {
				ci.alpn = []string{proto}
			}
		}
		_ = c.SetReadDeadline(time.Time{})
	}
	chain := l.match(&ci)
	if chain != nil {
		for _, lim := range chain.limits {
			if !lim.rl.Allow() {
				lim.rejected.Inc()
				m.log.Debug("connection rate limited", "listener", a.name, "stat_prefix", lim.rl.StatPrefix)
				c.Close()
				return
			}
		}
	}
	if chain == nil {
		m.log.Debug("no filter chain matched", "listener", a.name, "remote", c.RemoteAddr().String(),
			"port", strconv.Itoa(int(ci.port)), "sni", ci.sni, "transport", ci.transport)
		c.Close()
		return
	}
	if chain.TLS != nil {
		conn = tls.Server(conn, chain.TLS)
	}
	if len(chain.rbac) > 0 && !a.allowRBAC(m, chain, conn, ci.sni) {
		conn.Close()
		return
	}
	if chain.HCM != nil {
		if err := chain.server.Serve(conn); err != nil {
			conn.Close()
		}
		return
	}
	for _, nf := range chain.nats {
		conn = nf.Wrap(conn, m.log)
	}
	if chain.kafka != nil {
		conn = chain.kafka.Wrap(conn, m.log)
	}
	m.conns.Add(1)
	defer m.conns.Done()
	chain.TCP.Handle(m.tcpCtx, conn)
}

// trackedConn keeps the listener's active-connections gauge.
type trackedConn struct {
	net.Conn
	gauge *metrics.Listener
	once  sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.gauge.Active.Dec() })
	return c.Conn.Close()
}

// CloseWrite half-closes the TCP connection.
func (c *trackedConn) CloseWrite() error { return closeWrite(c.Conn) }

// NetConn returns the wrapped connection.
func (c *trackedConn) NetConn() net.Conn { return c.Conn }
