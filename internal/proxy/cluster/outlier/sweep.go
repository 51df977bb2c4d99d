package outlier

import (
	"context"
	"math"
	"math/rand/v2"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster/lb"
)

// Run sweeps every Interval until ctx ends: it returns hosts whose
// ejection time has passed, lowers the ejection-time multiplier of hosts
// that stayed in service for an interval, and runs success-rate and
// failure-percentage ejection over the interval's counts (envoy:
// DetectorImpl::onIntervalTimer). Hosts are returned only by sweeps, so an
// ejected host comes back at the first sweep at or after its ejection time.
// Call Run once per Detector.
func (d *Detector) Run(ctx context.Context) {
	interval := d.interval()
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.reconf:
			if iv := d.interval(); iv != interval {
				interval = iv
				t.Reset(iv)
			}
		case <-t.C:
			d.sweep(time.Now())
			interval = d.interval()
			t.Reset(interval)
		}
	}
}

func (d *Detector) interval() time.Duration {
	if iv := d.cfg.Load().Interval; iv > 0 {
		return iv
	}
	return DefaultInterval
}

// sweep is one interval evaluation at now.
func (d *Detector) sweep(now time.Time) {
	d.mu.Lock()
	cfg := d.cfg.Load()
	t := d.table.Load()
	changed := false
	ext := make([]rate, 0, len(t.list))
	local := make([]rate, 0, len(t.list))
	for _, hs := range t.list {
		if d.checkReturn(hs, cfg, now) {
			changed = true
		}
		// Counts keep running while a host is ejected (Envoy does the
		// same); ejected hosts are skipped below.
		et, es := hs.ext.take()
		lt, ls := hs.local.take()
		if !hs.ejected {
			ext = append(ext, rate{hs, et, es})
			local = append(local, rate{hs, lt, ls})
		}
	}
	if d.rates(ext, len(t.list), cfg, SuccessRate, FailurePercentage, now) {
		changed = true
	}
	if cfg.SplitExternalLocalOriginErrors &&
		d.rates(local, len(t.list), cfg, SuccessRateLocalOrigin, FailurePercentageLocalOrigin, now) {
		changed = true
	}
	d.mu.Unlock()
	if changed {
		d.notify()
	}
}

// checkReturn returns hs to service when its ejection time has passed, or
// lowers its multiplier when it stayed in service for an interval
// (envoy: DetectorImpl::checkHostForUneject). d.mu is held.
func (d *Detector) checkReturn(hs *hostState, cfg *Config, now time.Time) bool {
	if !hs.ejected {
		if hs.multiplier > 0 && !hs.returnedAt.IsZero() && now.Sub(hs.returnedAt) >= cfg.Interval {
			hs.multiplier--
		}
		return false
	}
	if now.Sub(hs.ejectedAt) < ejectionTime(hs, cfg) {
		return false
	}
	d.returnLocked(hs, now, "ejection time passed")
	return true
}

// HealthCheckPassed tells the detector that h passed an active health
// check. With SuccessfulActiveHealthCheckUnejectHost (Envoy's default), an
// ejected host that is not failing active health checks returns to service
// at once and its consecutive-error counters start afresh; OnChange is
// called. Otherwise, or for a host not ejected or unknown, it does nothing
// (envoy: the host-check-complete callback DetectorImpl registers with the
// cluster's health checker).
func (d *Detector) HealthCheckPassed(h *lb.Host) {
	if !d.cfg.Load().SuccessfulActiveHealthCheckUnejectHost || !h.Ejected() || h.FailedActiveHealthCheck() {
		return
	}
	d.mu.Lock()
	hs := d.table.Load().byHost[h]
	if hs == nil || !hs.ejected {
		d.mu.Unlock()
		return
	}
	d.returnLocked(hs, time.Now(), "active health check passed")
	d.mu.Unlock()
	d.notify()
}

// returnLocked returns the ejected hs to service. d.mu is held.
func (d *Detector) returnLocked(hs *hostState, now time.Time, why string) {
	hs.ejected = false
	hs.host.SetEjected(false)
	hs.returnedAt = now
	d.active--
	// Start the consecutive counters afresh, so a few new errors do not
	// eject the host again straight away.
	hs.c5xx.Store(0)
	hs.cGateway.Store(0)
	hs.cLocal.Store(0)
	if d.opts.Metrics != nil {
		d.opts.Metrics.Active(d.active)
	}
	d.log.Info("outlier host returned", "cluster", d.opts.Cluster, "host", hs.host.Address,
		"type", hs.lastType.String(), "ejected_for", now.Sub(hs.ejectedAt), "reason", why)
}

// ejectionTime is min(base × multiplier, max) plus the jitter drawn at
// ejection.
func ejectionTime(hs *hostState, cfg *Config) time.Duration {
	return min(cfg.BaseEjectionTime*time.Duration(hs.multiplier), cfg.MaxEjectionTime) + hs.jitter
}

// ejectLocked ejects hs, found an outlier by detector t, unless
// max_ejection_percent is reached or the enforcing_* draw says no
// (envoy: DetectorImpl::ejectHost). It reports whether hs was ejected.
// d.mu is held and hs is not ejected.
func (d *Detector) ejectLocked(hs *hostState, t EjectionType, cfg *Config, now time.Time) bool {
	m := d.opts.Metrics
	if m != nil {
		m.Detected(t)
	}
	// Envoy counts the host about to be ejected:
	// 100 × (active+1) / hosts <= max_ejection_percent, in exact integers.
	hosts := uint64(len(d.table.Load().list))
	if 100*uint64(d.active+1) > uint64(cfg.MaxEjectionPercent)*hosts {
		if m != nil {
			m.Overflow()
		}
		d.log.Debug("outlier ejection overflow", "cluster", d.opts.Cluster, "host", hs.host.Address,
			"type", t.String(), "max_ejection_percent", cfg.MaxEjectionPercent)
		return false
	}
	if !enforce(cfg.enforcing(t)) {
		d.log.Debug("outlier detected, not enforced", "cluster", d.opts.Cluster, "host", hs.host.Address,
			"type", t.String())
		return false
	}
	hs.ejected = true
	hs.host.SetEjected(true)
	hs.lastType = t
	hs.ejections++
	hs.ejectedAt = now
	d.active++
	// The multiplier grows with each ejection but stops once base ×
	// multiplier passes max, so it shrinks back from the cap in as few
	// healthy intervals as possible.
	if cfg.BaseEjectionTime*time.Duration(hs.multiplier) < cfg.MaxEjectionTime+cfg.BaseEjectionTime {
		hs.multiplier++
	}
	hs.jitter = 0
	if j := cfg.MaxEjectionTimeJitter; j > 0 {
		hs.jitter = rand.N(j + 1)
	}
	if m != nil {
		m.Ejected(t)
		m.Active(d.active)
	}
	d.log.Info("outlier host ejected", "cluster", d.opts.Cluster, "host", hs.host.Address,
		"type", t.String(), "duration", ejectionTime(hs, cfg), "ejections", hs.ejections)
	return true
}

// enforce draws whether an ejection with enforcing percentage pct happens
// (envoy: runtime featureEnabled, random % 100 < pct).
func enforce(pct uint32) bool {
	return pct >= 100 || (pct > 0 && rand.Uint32N(100) < pct)
}

// rate is one host's counts for one interval.
type rate struct {
	hs      *hostState
	total   uint64
	success uint64
}

// successRate is the host's success rate in percent.
func (r rate) successRate() float64 { return float64(r.success) * 100 / float64(r.total) }

// rates runs success-rate and failure-percentage ejection over one origin's
// counts (envoy: DetectorImpl::processSuccessRateEjections). rs holds the
// hosts not ejected; hosts is the number of all hosts. d.mu is held.
func (d *Detector) rates(rs []rate, hosts int, cfg *Config, srType, fpType EjectionType, now time.Time) bool {
	if uint64(hosts) < uint64(cfg.SuccessRateMinimumHosts) && uint64(hosts) < uint64(cfg.FailurePercentageMinimumHosts) {
		return false
	}
	srVolume := max(uint64(cfg.SuccessRateRequestVolume), 1)
	fpVolume := max(uint64(cfg.FailurePercentageRequestVolume), 1)
	var sr, fp []rate
	sum := 0.0
	for _, r := range rs {
		if r.total >= srVolume {
			sr = append(sr, r)
			sum += r.successRate()
		}
		if r.total >= fpVolume {
			fp = append(fp, r)
		}
	}
	changed := false
	if len(sr) > 0 && uint64(len(sr)) >= uint64(cfg.SuccessRateMinimumHosts) {
		threshold := successRateThreshold(sum, sr, float64(cfg.SuccessRateStdevFactor)/1000)
		for _, r := range sr {
			if r.successRate() < threshold && !r.hs.ejected && d.ejectLocked(r.hs, srType, cfg, now) {
				changed = true
			}
		}
	}
	if len(fp) > 0 && uint64(len(fp)) >= uint64(cfg.FailurePercentageMinimumHosts) {
		threshold := float64(cfg.FailurePercentageThreshold)
		for _, r := range fp {
			if 100-r.successRate() >= threshold && !r.hs.ejected && d.ejectLocked(r.hs, fpType, cfg, now) {
				changed = true
			}
		}
	}
	return changed
}

// successRateThreshold is mean - factor × stdev of the hosts' success
// rates, with the population standard deviation
// (envoy: DetectorImpl::successRateEjectionThreshold). For rates
// {50, 100, 100, 100, 100} and factor 1.9: mean 90, stdev 20, threshold 52.
func successRateThreshold(sum float64, rs []rate, factor float64) float64 {
	n := float64(len(rs))
	mean := sum / n
	variance := 0.0
	for _, r := range rs {
		dev := r.successRate() - mean
		variance += dev * dev
	}
	return mean - factor*math.Sqrt(variance/n)
}
