package telemetry

import (
	"math"
	"time"

	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
)

// latBounds are the upper bounds, in seconds, of the latency buckets the
// aggregator keeps: the proxy's own histogram buckets (0.5 ms to 60 s).
// A pushed histogram with other bounds is folded into these (each pushed
// bucket counts in the first of ours whose bound is not below its own).
var latBounds = metrics.LatencyBuckets

// nLat is the number of latency buckets: one per bound plus +Inf.
const nLat = 17

func init() {
	if len(latBounds)+1 != nLat {
		panic("telemetry: nLat does not match metrics.LatencyBuckets")
	}
}

// bucket holds what one series saw during one resolution interval (10 s
// by default). Latency counts are 32-bit: four billion requests per
// series and interval is beyond any proxy. Size: 128 bytes.
type bucket struct {
	idx       int64 // interval number (unix time / resolution); stale if not the wanted one
	req, fail uint64
	cx        uint64
	tx, rx    uint64
	lat       [nLat]uint32
}

// delta is what one push adds to a series.
type delta struct {
	req, fail uint64
	cx        uint64
	tx, rx    uint64
	lat       [nLat]uint64
	latAny    bool
}

func (d *delta) empty() bool {
	return d.req == 0 && d.fail == 0 && d.cx == 0 && d.tx == 0 && d.rx == 0 && !d.latAny
}

// ring is a series' rolling window: one bucket per interval, the newest
// overwriting the oldest.
type ring struct {
	first   int64 // interval the series was first fed
	buckets []bucket
}

func newRing(n int, first int64) ring { return ring{first: first, buckets: make([]bucket, n)} }

// add records d in interval idx.
func (r *ring) add(idx int64, d *delta) {
	b := &r.buckets[int(idx%int64(len(r.buckets)))]
	if b.idx != idx {
		*b = bucket{idx: idx}
	}
	b.req += d.req
	b.fail += d.fail
	b.cx += d.cx
	b.tx += d.tx
	b.rx += d.rx
	for i, n := range d.lat {
		b.lat[i] += uint32(min(n, math.MaxUint32))
	}
}

// sum is the total of the complete intervals (cur-n, cur-1] plus their
// span: how much of the window the series existed for.
type sum struct {
	req, fail, cx, tx, rx uint64
	lat                   [nLat]uint64
	intervals             int64
}

// window adds up the n complete intervals before cur. The interval in
// progress is left out so that rates do not dip while it fills.
func (r *ring) window(cur, n int64) sum {
	return r.span(cur-min(n, int64(len(r.buckets))), cur)
}

// span adds up the intervals [from, to) the ring still holds, from the
// series' first on.
func (r *ring) span(from, to int64) sum {
	var s sum
	from = max(from, r.first, to-int64(len(r.buckets)))
	if from >= to {
		return s
	}
	s.intervals = to - from
	for idx := from; idx < to; idx++ {
		b := &r.buckets[int(idx%int64(len(r.buckets)))]
		if b.idx != idx {
			continue
		}
		s.req += b.req
		s.fail += b.fail
		s.cx += b.cx
		s.tx += b.tx
		s.rx += b.rx
		for i, c := range b.lat {
			s.lat[i] += uint64(c)
		}
	}
	return s
}

// lastActive returns the last interval holding any data, or -1.
func (r *ring) lastActive() int64 {
	last := int64(-1)
	for i := range r.buckets {
		if b := &r.buckets[i]; b.idx > last && (b.req|b.cx|b.tx|b.rx) != 0 {
			last = b.idx
		}
	}
	return last
}

// quantile estimates the q-quantile (0 < q < 1) of the latencies counted
// in lat, in seconds, by linear interpolation inside the bucket holding
// the rank (as Prometheus' histogram_quantile does). The +Inf bucket
// answers with the highest finite bound. ok is false without samples.
func quantile(q float64, lat *[nLat]uint64) (v float64, ok bool) {
	var total uint64
	for _, c := range lat {
		total += c
	}
	if total == 0 {
		return 0, false
	}
	rank := q * float64(total)
	var cum uint64
	for i, c := range lat {
		if c == 0 || float64(cum+c) < rank {
			cum += c
			continue
		}
		if i == nLat-1 {
			return latBounds[nLat-2], true
		}
		lo := 0.0
		if i > 0 {
			lo = latBounds[i-1]
		}
		hi := latBounds[i]
		return lo + (hi-lo)*(rank-float64(cum))/float64(c), true
	}
	return latBounds[nLat-2], true
}

// latIndex returns our bucket for a pushed bucket with upper bound ub.
func latIndex(ub float64) int {
	for i, b := range latBounds {
		if ub <= b*(1+1e-9) {
			return i
		}
	}
	return nLat - 1
}

// Stats are the golden metrics of one series over a window.
type Stats struct {
	// Requests is the number of requests completed in the window, RPS the
	// rate per second and Success the fraction not failed (a 5xx, or no
	// response at all); Success is null without requests.
	Requests uint64   `json:"requests"`
	RPS      float64  `json:"rps"`
	Success  *float64 `json:"successRate,omitempty"`
	// Latency percentiles in milliseconds, estimated from the histogram
	// buckets (see docs/metrics.md for their resolution); null without
	// requests.
	P50 *float64 `json:"latencyP50Ms,omitempty"`
	P95 *float64 `json:"latencyP95Ms,omitempty"`
	P99 *float64 `json:"latencyP99Ms,omitempty"`
	// TCPConnections are the connections open at the last push (summed
	// over the proxies reporting), TCPConnectionRate the rate of new ones.
	TCPConnections    int64   `json:"tcpConnections"`
	TCPConnectionRate float64 `json:"tcpConnectionRate"`
	// BytesSent and BytesReceived are per second, seen from the proxy that
	// reports them (sent: toward the destination).
	BytesSent     float64 `json:"bytesSentPerSecond"`
	BytesReceived float64 `json:"bytesReceivedPerSecond"`
}

// stats turns a window sum into rates over the time the series existed
// in the window.
func (s *sum) stats(res time.Duration) Stats {
	var st Stats
	st.Requests = s.req
	if s.intervals == 0 {
		return st
	}
	secs := float64(s.intervals) * res.Seconds()
	st.RPS = float64(s.req) / secs
	st.TCPConnectionRate = float64(s.cx) / secs
	st.BytesSent = float64(s.tx) / secs
	st.BytesReceived = float64(s.rx) / secs
	if s.req > 0 {
		sr := float64(s.req-min(s.fail, s.req)) / float64(s.req)
		st.Success = &sr
	}
	for _, p := range []struct {
		q   float64
		dst **float64
	}{{.5, &st.P50}, {.95, &st.P95}, {.99, &st.P99}} {
		if v, ok := quantile(p.q, &s.lat); ok {
			ms := math.Round(v*1e6) / 1e3
			*p.dst = &ms
		}
	}
	return st
}
