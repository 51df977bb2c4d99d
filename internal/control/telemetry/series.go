package telemetry

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"
)

// DefaultSeriesWindow is the window of a series query that names none.
const DefaultSeriesWindow = 5 * time.Minute

// maxPoints bounds the points of one series answer (per row).
const maxPoints = 1000

// SeriesQuery selects time series of golden metrics, for charts.
type SeriesQuery struct {
	// Kind, Mesh, Name and From select as in Query.
	Kind       Kind
	Mesh, Name string
	From       string
	// Window is how far back the series go, as Query.Window; zero means
	// DefaultSeriesWindow.
	Window time.Duration
	// Step is the width of one point: rounded up to a whole multiple of
	// the resolution, at most the window. Zero means the resolution.
	Step time.Duration
}

// Point is the golden metrics of one step. The fields mean what Stats'
// fields do, over the step.
type Point struct {
	// Time is the start of the step.
	Time     time.Time `json:"time"`
	Requests uint64    `json:"requests"`
	RPS      float64   `json:"rps"`
	Success  *float64  `json:"successRate,omitempty"`
	P50      *float64  `json:"latencyP50Ms,omitempty"`
	P99      *float64  `json:"latencyP99Ms,omitempty"`
}

// SeriesRow is the time series of one service, route or dataplane.
type SeriesRow struct {
	Kind string `json:"kind"`
	Mesh string `json:"mesh"`
	// Name is namespace/name; From the calling service of a client-side
	// row.
	Name   string  `json:"name"`
	From   string  `json:"from,omitempty"`
	Points []Point `json:"points"`
}

// SeriesResult is the answer to a series query. Every row has the same
// points, oldest first: the complete intervals of the window (the one in
// progress is left out, as in Stats).
type SeriesResult struct {
	Window string      `json:"window"`
	Step   string      `json:"step"`
	Rows   []SeriesRow `json:"rows"`
}

// Series answers a series query: one row per service, route or
// dataplane with data in the window (idle services are left out).
func (a *Aggregator) Series(q SeriesQuery) (SeriesResult, error) {
	if q.Window == 0 {
		q.Window = DefaultSeriesWindow
	}
	w, n, err := a.window(q.Window)
	if err != nil {
		return SeriesResult{}, err
	}
	res := a.o.Resolution
	if q.Step < 0 {
		return SeriesResult{}, errors.New("step: must be positive")
	}
	stepN := max(int64((q.Step+res-1)/res), 1)
	if stepN > n {
		return SeriesResult{}, fmt.Errorf("step: at most the window (%s)", w)
	}
	points := (n + stepN - 1) / stepN
	if points > maxPoints {
		return SeriesResult{}, fmt.Errorf("step: the window holds %d steps, at most %d (take a longer step)", points, maxPoints)
	}
	sel, err := Query{Kind: q.Kind, Mesh: q.Mesh, Name: q.Name, From: q.From}.selector()
	if err != nil {
		return SeriesResult{}, err
	}
	cur := a.interval(a.o.Now())
	// The steps end at cur; the oldest one may be shorter when the window
	// is not a whole number of steps.
	start := cur - n
	bounds := make([]int64, points+1)
	bounds[points] = cur
	for i := points - 1; i >= 0; i-- {
		bounds[i] = max(bounds[i+1]-stepN, start)
	}
	sums := map[rowKey][]sum{}
	a.mu.Lock()
	for k, s := range a.series {
		rk, ok := sel.row(k)
		if !ok {
			continue
		}
		ps := sums[rk]
		if ps == nil {
			ps = make([]sum, points)
			sums[rk] = ps
		}
		for i := range ps {
			ps[i].merge(s.ring.span(bounds[i], bounds[i+1]))
		}
	}
	a.mu.Unlock()
	out := SeriesResult{Window: w.String(), Step: (time.Duration(stepN) * res).String(), Rows: make([]SeriesRow, 0, len(sums))}
	for rk, ps := range sums {
		row := SeriesRow{Kind: q.Kind.String(), Mesh: rk.mesh, Name: rk.name, From: rk.from, Points: make([]Point, len(ps))}
		for i := range ps {
			st := ps[i].stats(res)
			row.Points[i] = Point{
				Time:     time.Unix(0, bounds[i]*int64(res)).UTC(),
				Requests: st.Requests, RPS: st.RPS, Success: st.Success, P50: st.P50, P99: st.P99,
			}
		}
		out.Rows = append(out.Rows, row)
	}
	slices.SortFunc(out.Rows, func(x, y SeriesRow) int {
		return cmp.Or(cmp.Compare(x.Mesh, y.Mesh), cmp.Compare(x.Name, y.Name), cmp.Compare(x.From, y.From))
	})
	return out, nil
}

// merge adds o to s; the span is the longest of the two, as several
// series of one row cover the same time.
func (s *sum) merge(o sum) {
	s.req += o.req
	s.fail += o.fail
	s.cx += o.cx
	s.tx += o.tx
	s.rx += o.rx
	for i, v := range o.lat {
		s.lat[i] += v
	}
	s.intervals = max(s.intervals, o.intervals)
}
