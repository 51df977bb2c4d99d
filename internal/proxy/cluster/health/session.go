package health

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster/lb"
)

// session is the checking of one host. Fields below the line are owned by
// the session's goroutine.
type session struct {
	host    *lb.Host
	initial bool // counted in Checker.initPending (guarded by Checker.mu)

	stopCtx context.Context // set when the goroutine starts (under Checker.mu)
	stop    context.CancelFunc
	wake    chan struct{} // an Update changed the configuration

	// ---- owned by the goroutine
	state   hostState
	last    result
	lastTr  transition
	failRun bool // the previous check failed too (for logging)
	conn    net.Conn
	cc      *http.ClientConn
	connGen uint64
	scheme  string // "http" or "https", of conn or cc
}

func (s *session) cancel() {
	if s.stop != nil {
		s.stop()
	}
}

func (s *session) closeConn() {
	if s.cc != nil {
		s.cc.Close()
		s.cc = nil
	}
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

// loop runs the checks of s until the session or Run ends: a first check
// after the initial jitter, then each next one an interval after the
// previous one finished (Envoy arms the interval timer on the result).
func (c *Checker) loop(s *session) {
	defer c.wg.Done()
	defer s.closeConn()
	cfg, _ := c.config()
	t := time.NewTimer(cfg.first(c.rnd))
	defer t.Stop()
	for {
		select {
		case <-s.stopCtx.Done():
			return
		case <-s.wake:
			cfg, _ = c.config()
			if s.state.checked {
				t.Reset(cfg.next(s.last, s.lastTr, c.hasTraffic(), c.rnd))
			} else {
				t.Reset(cfg.first(c.rnd))
			}
			continue
		case <-t.C:
		}
		r, tr := c.checkOnce(s)
		if s.stopCtx.Err() != nil {
			return
		}
		cfg, _ = c.config()
		t.Reset(cfg.next(r, tr, c.hasTraffic(), c.rnd))
	}
}

// checkOnce runs one check of s and applies its result.
func (c *Checker) checkOnce(s *session) (result, transition) {
	cfg, gen := c.config()
	if s.connGen != gen {
		s.closeConn() // the check's target or protocol may have changed
		s.connGen = gen
	}
	if c.opts.Metrics != nil {
		c.opts.Metrics.Attempt()
	}
	ctx, cancel := context.WithTimeout(s.stopCtx, cfg.Timeout)
	r, err := c.probe(ctx, s, cfg)
	if r != success && (errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(ctx.Err(), context.DeadlineExceeded)) {
		r = failTimeout
	}
	cancel()
	if s.stopCtx.Err() != nil {
		return r, unchanged // removed or stopped mid-check: no verdict
	}
	if r.network() || !cfg.ReuseConnection {
		s.closeConn()
	}
	tr := s.state.record(r, cfg.HealthyThreshold, cfg.UnhealthyThreshold)
	s.last, s.lastTr = r, tr
	c.report(s, cfg, r, err, tr)
	return r, tr
}

// report publishes one result: metrics, logs, the host flag and OnChange.
func (c *Checker) report(s *session, cfg *Config, r result, err error, tr transition) {
	if m := c.opts.Metrics; m != nil {
		if r == success {
			m.Success()
		} else {
			m.Failure(r.network())
		}
	}
	addr := s.host.Address
	if r == success {
		if cfg.AlwaysLogSuccess {
			c.log.Info("health check passed", "host", addr)
		}
	} else {
		// Envoy logs the first failure of a run, every one with
		// always_log_health_check_failures.
		lvl := slog.LevelDebug
		if cfg.AlwaysLogFailures || !s.failRun {
			lvl = slog.LevelWarn
		}
		c.log.Log(context.Background(), lvl, "health check failed", "host", addr, "failure", r.String(), "error", err)
	}
	s.failRun = r != success

	var flipped bool
	c.mu.Lock()
	if tr == changed && s.stopCtx.Err() == nil {
		flipped = s.host.SetFailedActiveHealthCheck(s.state.failed)
		if flipped {
			c.reportHealthyLocked()
		}
	}
	c.initPendingDoneLocked(s)
	stopped := s.stopCtx.Err() != nil
	c.mu.Unlock()
	if r == success && !stopped && c.opts.OnPass != nil {
		defer c.opts.OnPass(s.host) // after OnChange: the pickers see the flag first
	}
	if !flipped {
		return
	}
	if s.state.failed {
		c.log.Warn("host failed active health check", "host", addr)
	} else {
		c.log.Info("host passed active health check", "host", addr)
	}
	if c.opts.OnChange != nil {
		c.opts.OnChange()
	}
}
