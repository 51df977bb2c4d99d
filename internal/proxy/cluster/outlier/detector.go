package outlier

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster/lb"
)

// Metrics receives the detector's counters and gauge. The names in
// parentheses are Envoy's cluster.<name>.outlier_detection stats.
// Methods are called under the detector's lock: they must be cheap and
// must not call back into the Detector.
type Metrics interface {
	// Detected counts an outlier found by detector t, enforced or not
	// (ejections_detected_<t>).
	Detected(t EjectionType)
	// Ejected counts an enforced ejection (ejections_enforced_<t>; their
	// sum is ejections_enforced_total).
	Ejected(t EjectionType)
	// Overflow counts an ejection skipped because max_ejection_percent was
	// reached (ejections_overflow).
	Overflow()
	// Active sets the number of hosts ejected now (ejections_active).
	Active(n int)
}

// Options are a Detector's collaborators. The zero value is valid.
type Options struct {
	// Cluster names the cluster in log records.
	Cluster string
	// OnChange is called after hosts were ejected or returned to service,
	// so that the cluster rebuilds its picker from the hosts' flags
	// (lb.Host.Healthy). Calls are serialized and made without the
	// detector's lock held; they may come from Run or, for consecutive
	// errors, from the goroutine calling Report. nil means no callback.
	OnChange func()
	// Logger receives ejections and returns at info level. nil discards.
	Logger *slog.Logger
	// Metrics receives counters. nil means none.
	Metrics Metrics
}

// Detector is the outlier detector of one cluster. It is long-lived: the
// cluster manager keeps it across configuration snapshots and feeds it
// the new Config (Update) and endpoint set (SetHosts), and host state
// (counters, ejections, the ejection-time multiplier) survives both.
//
// Report is safe for concurrent use and lock-free; the other methods may
// be called from any goroutine. A Detector must not be copied.
type Detector struct {
	opts Options
	log  *slog.Logger

	cfg    atomic.Pointer[Config]
	table  atomic.Pointer[hostTable]
	reconf chan struct{} // wakes Run after Update; buffered 1

	mu     sync.Mutex // guards ejection state of hostState and writes of table
	active int        // hosts ejected now

	notifyMu sync.Mutex // serializes OnChange
}

// hostTable is an immutable view of the hosts; Report reads it lock-free.
type hostTable struct {
	byHost map[*lb.Host]*hostState
	list   []*hostState // SetHosts order; sweeps walk it
}

// hostState is the detector's state for one host.
type hostState struct {
	host *lb.Host

	// Hot path, atomic.
	c5xx, cGateway, cLocal atomic.Uint32
	ext, local             bucket // external and local-origin volume

	// Guarded by Detector.mu.
	ejected    bool
	lastType   EjectionType
	multiplier uint32 // ejection-time multiplier (envoy: ejectTimeBackoff)
	ejections  uint64 // times ejected
	ejectedAt  time.Time
	returnedAt time.Time
	jitter     time.Duration
}

// bucket counts requests and successes of the current interval in one
// word, so a sweep takes both with one Swap: total in the high 32 bits,
// successes in the low 32 bits.
type bucket struct{ v atomic.Uint64 }

const (
	bucketTotal   = 1 << 32
	bucketSuccess = bucketTotal | 1
)

func (b *bucket) take() (total, success uint64) {
	v := b.v.Swap(0)
	return v >> 32, v & (bucketTotal - 1)
}

// New returns a Detector with cfg and no hosts. Start Run for interval
// sweeps (success rate, failure percentage and the return of ejected
// hosts); consecutive-error ejections happen in Report whether or not Run
// is running.
func New(cfg Config, opts Options) *Detector {
	d := &Detector{opts: opts, log: opts.Logger, reconf: make(chan struct{}, 1)}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	d.cfg.Store(&cfg)
	d.table.Store(&hostTable{})
	return d
}

// Config returns the current configuration.
func (d *Detector) Config() Config { return *d.cfg.Load() }

// Update replaces the configuration, keeping every host's state. New
// thresholds apply from the next report or sweep; the ejection time of a
// host ejected now is recomputed from the new base and max at each sweep,
// as Envoy does with runtime overrides. A changed interval restarts Run's
// timer.
func (d *Detector) Update(cfg Config) {
	d.cfg.Store(&cfg)
	select {
	case d.reconf <- struct{}{}:
	default:
	}
}

// SetHosts sets the cluster's hosts (all priorities). Hosts that remain
// keep their state; new hosts start clean; removed hosts are forgotten and
// their ejection flag cleared. SetHosts does not call OnChange: the caller
// is rebuilding its picker anyway and should do so after SetHosts returns.
// Calling SetHosts(nil) returns every host to service, which is how a
// cluster turns outlier detection off.
func (d *Detector) SetHosts(hosts []*lb.Host) {
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.table.Load()
	t := &hostTable{byHost: make(map[*lb.Host]*hostState, len(hosts)), list: make([]*hostState, 0, len(hosts))}
	for _, h := range hosts {
		if h == nil || t.byHost[h] != nil {
			continue
		}
		hs := old.byHost[h]
		if hs == nil {
			hs = &hostState{host: h}
			// A new host is not ejected, whatever an earlier owner left.
			h.SetEjected(false)
		}
		t.byHost[h] = hs
		t.list = append(t.list, hs)
	}
	for _, hs := range old.list {
		if t.byHost[hs.host] == nil && hs.ejected {
			hs.ejected = false
			hs.host.SetEjected(false)
			d.active--
		}
	}
	d.table.Store(t)
	if d.opts.Metrics != nil {
		d.opts.Metrics.Active(d.active)
	}
}

// Report records the outcome of one request to h; status is the HTTP
// status for HTTPStatus and ignored otherwise. Hosts not given to SetHosts
// are ignored. Report is lock-free and does not allocate, except when it
// ejects the host (see Outcome for how each outcome counts).
func (d *Detector) Report(h *lb.Host, o Outcome, status int) {
	hs := d.table.Load().byHost[h]
	if hs == nil {
		return
	}
	cfg := d.cfg.Load()
	if !cfg.SplitExternalLocalOriginErrors {
		switch o {
		case Success:
			status = 200
		case Failure:
			status = 500
		case ConnectFailure, Reset:
			status = 503
		case Timeout:
			status = 504
		case ConnectSuccess:
			return
		}
		d.putHTTP(hs, cfg, status)
		return
	}
	switch o {
	case Success:
		d.putHTTP(hs, cfg, 200)
		d.localSuccess(hs)
	case Failure:
		d.putHTTP(hs, cfg, 503)
	case HTTPStatus:
		d.putHTTP(hs, cfg, status)
	case ConnectSuccess:
		d.localSuccess(hs)
	case ConnectFailure, Reset, Timeout:
		hs.local.v.Add(bucketTotal)
		if n := hs.cLocal.Add(1); n == cfg.ConsecutiveLocalOriginFailure && n != 0 {
			d.consecutive(hs, ConsecutiveLocalOriginFailure)
		}
	}
}

// putHTTP is envoy's DetectorHostMonitorImpl::putHttpResponseCode. The
// consecutive counters fire when they reach the threshold exactly, so a
// host that stays failing triggers once until a success or its return
// resets the counter.
func (d *Detector) putHTTP(hs *hostState, cfg *Config, status int) {
	if status < 500 || status > 599 {
		hs.ext.v.Add(bucketSuccess)
		// Skip the store when already 0: it keeps the cache line shared.
		if hs.c5xx.Load() != 0 {
			hs.c5xx.Store(0)
		}
		if hs.cGateway.Load() != 0 {
			hs.cGateway.Store(0)
		}
		return
	}
	hs.ext.v.Add(bucketTotal)
	if status >= 502 && status <= 504 {
		if n := hs.cGateway.Add(1); n == cfg.ConsecutiveGatewayFailure && n != 0 {
			d.consecutive(hs, ConsecutiveGatewayFailure)
		}
	} else if hs.cGateway.Load() != 0 {
		hs.cGateway.Store(0)
	}
	if n := hs.c5xx.Add(1); n == cfg.Consecutive5xx && n != 0 {
		d.consecutive(hs, Consecutive5xx)
	}
}

func (d *Detector) localSuccess(hs *hostState) {
	hs.local.v.Add(bucketSuccess)
	if hs.cLocal.Load() != 0 {
		hs.cLocal.Store(0)
	}
}

// consecutive handles a consecutive-error detection
// (envoy: DetectorImpl::onConsecutiveErrorWorker).
func (d *Detector) consecutive(hs *hostState, t EjectionType) {
	d.mu.Lock()
	if d.table.Load().byHost[hs.host] != hs || hs.ejected {
		// Removed meanwhile, or already out: nothing to detect.
		d.mu.Unlock()
		return
	}
	cfg := d.cfg.Load()
	changed := d.ejectLocked(hs, t, cfg, time.Now())
	// Reset the counter even when not enforced, so a new run of errors
	// is detected again.
	switch t {
	case Consecutive5xx:
		hs.c5xx.Store(0)
	case ConsecutiveGatewayFailure:
		hs.cGateway.Store(0)
	case ConsecutiveLocalOriginFailure:
		hs.cLocal.Store(0)
	}
	d.mu.Unlock()
	if changed {
		d.notify()
	}
}

// notify calls OnChange, one call at a time. OnChange reads the hosts'
// current flags, so the last call always sees the last change.
func (d *Detector) notify() {
	if d.opts.OnChange == nil {
		return
	}
	d.notifyMu.Lock()
	defer d.notifyMu.Unlock()
	d.opts.OnChange()
}
