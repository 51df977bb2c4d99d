package telemetry

import (
	"errors"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// Defaults of Options.
const (
	DefaultResolution = 10 * time.Second
	DefaultRetention  = 15 * time.Minute
	DefaultMaxSeries  = 4096
	DefaultStaleAfter = 30 * time.Second
)

// Proxy is what the aggregator must know of a proxy to put its numbers on
// the mesh: who it is and which services its inbound ports serve.
type Proxy struct {
	Mesh string
	// Dataplane is the proxy's Dataplane, namespace/name.
	Dataplane string
	// Service is the service whose identity the proxy has,
	// namespace/name: the source of its outbound edges. Empty: the
	// proxy's outbound traffic is not attributed.
	Service string
	// Inbound maps an inbound's stat prefix ("inbound:<port>", as the
	// translator names it) to the services served there (namespace/name).
	Inbound map[string][]string
}

// ServiceRef names a service of a mesh, namespace/name.
type ServiceRef struct{ Mesh, Name string }

// Resolver tells the aggregator about proxies and services. The control
// plane answers from the resources it holds.
type Resolver interface {
	// Proxy describes the proxy with an xDS node id (namespace/name of its
	// Dataplane); false when no such Dataplane is known.
	Proxy(nodeID string) (Proxy, bool)
	// Services lists every service, so idle ones show up too.
	Services() []ServiceRef
}

// Options configure an Aggregator. Zero values mean the defaults.
type Options struct {
	// Resolver maps node ids to mesh identities. Required.
	Resolver Resolver
	// Resolution is the width of one window bucket (default 10 s); windows
	// are whole multiples of it.
	Resolution time.Duration
	// Retention is the longest window kept (default 15 min).
	Retention time.Duration
	// MaxSeries caps the series kept, topics included (default 4096); the
	// numbers of a new series beyond it are dropped and counted (Collector).
	MaxSeries int
	// StaleAfter is how long a proxy's gauges (open connections) count
	// after its last push (default 30 s).
	StaleAfter time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Aggregator keeps the golden metrics of the mesh. Create it with New.
type Aggregator struct {
	o       Options
	started time.Time
	n       int64 // buckets in the ring

	nodeMu sync.Mutex
	nodes  map[string]*nodeState

	mu      sync.Mutex
	series  map[seriesKey]*series
	topics  map[topicKey]*topicSeries // topics.go
	dropped uint64
	swept   int64 // interval of the last sweep
	pushes  uint64
}

// Kind is what a series describes.
type Kind uint8

// The kinds of series.
const (
	KindService   Kind = iota // server side, from the destination's inbound
	KindRoute                 // from the callers' outbound routes
	KindDataplane             // one proxy's inbound
	KindEdge                  // source service → destination service, client side
)

var kindNames = [...]string{"service", "route", "dataplane", "edge"}

func (k Kind) String() string { return kindNames[k] }

// ParseKind reads a kind's name.
func ParseKind(s string) (Kind, error) {
	for i, n := range kindNames {
		if s == n {
			return Kind(i), nil
		}
	}
	return 0, errors.New(`kind: must be one of service, route, dataplane (got "` + s + `")`)
}

type seriesKey struct {
	kind             Kind
	mesh, name, from string
}

// series is one rolling window with its cumulative totals (for the
// Prometheus collector) and the latest gauges per proxy.
type series struct {
	ring  ring
	total delta
	// active are open connections by node; mtls the mutual TLS state of
	// an edge by node (1 yes, 0 no).
	active map[string]gaugeSample
	mtls   map[string]int8
}

type gaugeSample struct {
	v  int64
	at time.Time
}

// nodeState is a proxy's previous cumulative values.
type nodeState struct {
	mu    sync.Mutex
	fed   bool    // a baseline push has been taken
	start float64 // process_start_time_seconds of the last push
	last  time.Time
	// leaf is when the proxy's leaf certificate expires, from its last
	// push that said (zero: never said).
	leaf time.Time
	prev map[sampleKey]float64
	hist map[sampleKey]*[nLat]float64
	// Scratch space of one push, kept to spare allocations.
	deltas map[seriesKey]*delta
	gauges map[seriesKey]int64
	mtls   map[seriesKey]int8
	free   []*delta
	// scratch is one histogram's increase (extractor.histogram).
	scratch [nLat]float64
	// topics is the messaging scratch space (topics.go); nil until the
	// proxy pushes a messaging metric.
	topics *topicNode
}

// sampleKey identifies one pushed sample: a family and up to two label
// values that matter (cluster and code, say).
type sampleKey struct{ fam, a, b string }

// New returns an Aggregator.
func New(o Options) (*Aggregator, error) {
	if o.Resolver == nil {
		return nil, errors.New("telemetry: a resolver is required")
	}
	if o.Resolution <= 0 {
		o.Resolution = DefaultResolution
	}
	if o.Retention <= 0 {
		o.Retention = DefaultRetention
	}
	if o.Retention < o.Resolution {
		return nil, errors.New("telemetry: retention shorter than the resolution")
	}
	if o.MaxSeries <= 0 {
		o.MaxSeries = DefaultMaxSeries
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = DefaultStaleAfter
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	a := &Aggregator{
		o: o, started: o.Now(), n: int64(o.Retention / o.Resolution),
		nodes: map[string]*nodeState{}, series: map[seriesKey]*series{}, topics: map[topicKey]*topicSeries{},
	}
	return a, nil
}

// Resolution returns the width of one window bucket.
func (a *Aggregator) Resolution() time.Duration { return a.o.Resolution }

// Retention returns the longest window kept.
func (a *Aggregator) Retention() time.Duration { return a.o.Retention }

func (a *Aggregator) interval(t time.Time) int64 { return t.UnixNano() / int64(a.o.Resolution) }

// ErrUnknownProxy is returned by Ingest for a node id that names no
// known Dataplane; its numbers are remembered as a baseline only.
var ErrUnknownProxy = errors.New("no Dataplane known for this node id")

// Ingest takes one push of a proxy's metrics (cumulative, as Envoy's
// metrics service sends them by default). The first push of a proxy
// that was running before the aggregator started is a baseline; after
// that every push adds its increase. A counter that went down, or a new
// process_start_time_seconds, is a restart: its value then counts whole.
func (a *Aggregator) Ingest(nodeID string, fams []*dto.MetricFamily) error {
	now := a.o.Now()
	a.nodeMu.Lock()
	ns := a.nodes[nodeID]
	if ns == nil {
		ns = &nodeState{
			prev: map[sampleKey]float64{}, hist: map[sampleKey]*[nLat]float64{},
			deltas: map[seriesKey]*delta{}, gauges: map[seriesKey]int64{}, mtls: map[seriesKey]int8{},
		}
		a.nodes[nodeID] = ns
	}
	a.nodeMu.Unlock()

	p, known := a.o.Resolver.Proxy(nodeID)
	ns.mu.Lock()
	defer ns.mu.Unlock()
	ns.last = now
	if secs, ok := leafExpiry(fams); ok {
		ns.leaf = now.Add(time.Duration(secs * float64(time.Second))).Truncate(time.Second)
	}
	start, restarted := processStart(fams), false
	if start != 0 {
		restarted = ns.start != 0 && start != ns.start
		ns.start = start
	}
	// Everything a proxy started after the aggregator counted is new.
	count := ns.fed || (start != 0 && start >= float64(a.started.UnixNano())/1e9)
	ns.fed = true
	ex := extractor{ns: ns, p: &p, count: count && known, reset: restarted}
	for _, f := range fams {
		ex.family(f)
	}
	ex.topicsLater()
	a.feed(nodeID, ns, now)
	if !known {
		return ErrUnknownProxy
	}
	return nil
}

// feed adds a push's deltas and gauges to the series.
func (a *Aggregator) feed(nodeID string, ns *nodeState, now time.Time) {
	idx := a.interval(now)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pushes++
	if idx != a.swept {
		a.swept = idx
		a.sweepLocked(now)
	}
	for k, d := range ns.deltas {
		if s := a.seriesLocked(k, idx, d.empty()); s != nil && !d.empty() {
			s.ring.add(idx, d)
			s.total.add(d)
		}
		*d = delta{}
		ns.free = append(ns.free, d)
	}
	clear(ns.deltas)
	for k, v := range ns.gauges {
		if s := a.seriesLocked(k, idx, v == 0); s != nil {
			if s.active == nil {
				s.active = map[string]gaugeSample{}
			}
			s.active[nodeID] = gaugeSample{v, now}
		}
	}
	clear(ns.gauges)
	for k, v := range ns.mtls {
		if s := a.series[k]; s != nil {
			if s.mtls == nil {
				s.mtls = map[string]int8{}
			}
			s.mtls[nodeID] = v
		}
	}
	clear(ns.mtls)
	a.feedTopicsLocked(nodeID, ns.topics, idx, now)
}

// seriesLocked returns the series of k, creating it unless onlyExisting
// or the cap is reached.
func (a *Aggregator) seriesLocked(k seriesKey, idx int64, onlyExisting bool) *series {
	if s := a.series[k]; s != nil {
		return s
	}
	if onlyExisting {
		return nil
	}
	if len(a.series)+len(a.topics) >= a.o.MaxSeries {
		a.dropped++
		return nil
	}
	s := &series{ring: newRing(int(a.n), idx)}
	a.series[k] = s
	return s
}

// sweepLocked drops series without data for the retention period and
// whose gauges are stale, and proxies that stopped pushing that long ago.
func (a *Aggregator) sweepLocked(now time.Time) {
	oldest := a.interval(now) - a.n
	for k, s := range a.series {
		for id, g := range s.active {
			if now.Sub(g.at) > a.o.StaleAfter {
				delete(s.active, id)
			}
		}
		if len(s.active) == 0 && s.ring.lastActive() < oldest && s.ring.first < oldest {
			delete(a.series, k)
		}
	}
	a.sweepTopicsLocked(now, oldest)
	a.nodeMu.Lock()
	for id, ns := range a.nodes {
		if ns.mu.TryLock() {
			if now.Sub(ns.last) > a.o.Retention {
				delete(a.nodes, id)
			}
			ns.mu.Unlock()
		}
	}
	a.nodeMu.Unlock()
}

// Forget drops the gauges a proxy reported (its stream has ended); its
// previous values stay, so a reconnect continues where it left off.
func (a *Aggregator) Forget(nodeID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.series {
		delete(s.active, nodeID)
	}
	a.forgetTopicsLocked(nodeID)
}

func (d *delta) add(o *delta) {
	d.req += o.req
	d.fail += o.fail
	d.cx += o.cx
	d.tx += o.tx
	d.rx += o.rx
	for i, n := range o.lat {
		d.lat[i] += n
	}
	d.latAny = d.latAny || o.latAny
}

func processStart(fams []*dto.MetricFamily) float64 {
	for _, f := range fams {
		if f.GetName() == "process_start_time_seconds" {
			if ms := f.GetMetric(); len(ms) > 0 {
				return ms[0].GetGauge().GetValue()
			}
		}
	}
	return 0
}
