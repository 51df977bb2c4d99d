package lb

import (
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// DefaultEWMADecay is the time constant of PeakEWMA's moving average, as in
// Linkerd and Finagle.
const DefaultEWMADecay = 10 * time.Second

// peakEWMA is per-host latency state for PeakEWMA, kept on the Host so it
// survives endpoint updates. Times are nanoseconds.
type peakEWMA struct {
	cost  atomic.Uint64 // math.Float64bits of the moving average RTT
	stamp atomic.Int64  // when cost was last updated (UnixNano)
}

// Observe records the round-trip time of a finished request to h for
// PeakEWMA. An overloaded answer (429, gRPC RESOURCE_EXHAUSTED) should be
// reported with penalized true: it counts as a very slow answer, so a host
// shedding load is avoided rather than rewarded for answering fast.
func (h *Host) Observe(rtt time.Duration, penalized bool) {
	h.observe(rtt, penalized, time.Now().UnixNano(), DefaultEWMADecay)
}

// penaltyRTT is the latency a penalized answer counts as.
const penaltyRTT = time.Second

func (h *Host) observe(rtt time.Duration, penalized bool, now int64, decay time.Duration) {
	v := float64(rtt)
	if penalized {
		v = math.Max(v, float64(penaltyRTT))
	}
	for {
		oldBits := h.ewma.cost.Load()
		old := math.Float64frombits(oldBits)
		last := h.ewma.stamp.Load()
		next := v
		if old != 0 && v < old {
			// Decay towards the new sample; a slower sample replaces the
			// average at once (the "peak" in peak EWMA).
			w := math.Exp(-float64(now-last) / float64(decay))
			next = old*w + v*(1-w)
		}
		if h.ewma.cost.CompareAndSwap(oldBits, math.Float64bits(next)) {
			h.ewma.stamp.Store(now)
			return
		}
	}
}

// cost is the host's expected latency times its load.
func (h *Host) cost() float64 {
	c := math.Float64frombits(h.ewma.cost.Load())
	if c == 0 {
		c = float64(time.Millisecond) // unknown hosts look fast, so they get tried
	}
	return c * float64(h.Active()+1)
}

// PeakEWMA returns a latency-aware policy, Linkerd's default: it samples two
// hosts at random and picks the one with the lower cost, the peak-sensitive
// moving average of its response times multiplied by its requests in
// flight. Weights are ignored. Callers feed it with Host.Observe.
func PeakEWMA() Policy { return peakEWMAPolicy{} }

type peakEWMAPolicy struct{}

var _ Policy = peakEWMAPolicy{}

// ObservesLatency marks a policy that needs Host.Observe after each request.
func (peakEWMAPolicy) ObservesLatency() {}

func (peakEWMAPolicy) Build(members []Member) Picker {
	if p := trivialPicker(members); p != nil {
		return p
	}
	return &ewmaPicker{hosts: hostsOf(members)}
}

type ewmaPicker struct{ hosts []*Host }

func (p *ewmaPicker) Pick(*Request) *Host {
	n := uint64(len(p.hosts))
	a := p.hosts[rand.Uint64N(n)]
	b := p.hosts[rand.Uint64N(n-1)]
	if b == a {
		b = p.hosts[n-1]
	}
	if b.cost() < a.cost() {
		return b
	}
	return a
}
