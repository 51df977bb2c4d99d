package telemetry

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// DefaultWindow is the window of a query that names none.
const DefaultWindow = time.Minute

// Query selects golden metrics.
type Query struct {
	Kind Kind
	// Mesh restricts the answer to one mesh; "" means every mesh.
	Mesh string
	// Name selects one service, route or dataplane: "namespace/name", or
	// "name" for that name in any namespace. "" lists them all.
	Name string
	// From, for services and routes, reports what the callers of this
	// service (same form as Name) saw, client side, instead of the
	// destination's own numbers.
	From string
	// Window is how far back to look: whole multiples of the resolution,
	// at most the retention. Zero means DefaultWindow.
	Window time.Duration
}

// Row is the golden metrics of one service, route or dataplane.
type Row struct {
	Kind string `json:"kind"`
	Mesh string `json:"mesh"`
	// Name is namespace/name.
	Name string `json:"name"`
	// From is the calling service (namespace/name) of a client-side row.
	From string `json:"from,omitempty"`
	Stats
}

// Edge is one pair of services that talk, seen by the caller's proxies.
type Edge struct {
	Mesh string `json:"mesh"`
	From string `json:"from"`
	To   string `json:"to"`
	// MTLS is "yes" when every caller's proxy reports mutual TLS toward
	// the destination, "no" when any reports otherwise, and "unknown"
	// when none says (trellis_cluster_upstream_mtls, docs/metrics.md).
	MTLS string `json:"mtls"`
	Stats
}

// Result is an answer to a query.
type Result struct {
	// Window is the window used, a Go duration.
	Window string `json:"window"`
	Rows   []Row  `json:"rows"`
}

// EdgeResult is the answer to an edges query.
type EdgeResult struct {
	Window string `json:"window"`
	Edges  []Edge `json:"edges"`
}

// window checks a window and returns it in intervals.
func (a *Aggregator) window(w time.Duration) (time.Duration, int64, error) {
	if w == 0 {
		w = DefaultWindow
	}
	res := a.o.Resolution
	switch {
	case w < 0:
		return 0, 0, errors.New("window: must be positive")
	case w > a.o.Retention:
		return 0, 0, fmt.Errorf("window: at most %s (the retention)", a.o.Retention)
	}
	n := int64((w + res - 1) / res)
	return time.Duration(n) * res, n, nil
}

func matches(name, q string) bool {
	return q == "" || name == q || (!strings.Contains(q, "/") && strings.HasSuffix(name, "/"+q))
}

// acc accumulates series into one row.
type acc struct {
	s      sum
	active int64
	mtls   int8 // -1 unknown, 0 some no, 1 all yes
}

func (c *acc) add(s *series, cur, n int64, now time.Time, stale time.Duration) {
	w := s.ring.window(cur, n)
	c.s.req += w.req
	c.s.fail += w.fail
	c.s.cx += w.cx
	c.s.tx += w.tx
	c.s.rx += w.rx
	for i, v := range w.lat {
		c.s.lat[i] += v
	}
	c.s.intervals = max(c.s.intervals, w.intervals)
	for _, g := range s.active {
		if now.Sub(g.at) <= stale {
			c.active += g.v
		}
	}
	for _, v := range s.mtls {
		if v == 0 || c.mtls == 0 {
			c.mtls = 0
		} else {
			c.mtls = 1
		}
	}
}

type rowKey struct{ mesh, name, from string }

// selector picks the series a Query reads and the row each is summed
// into: a service query with a caller reads edges, one row per caller.
type selector struct {
	q    Query
	kind Kind
}

func (q Query) selector() (selector, error) {
	sel := selector{q: q, kind: q.Kind}
	switch {
	case q.From != "" && q.Kind == KindDataplane:
		return selector{}, errors.New("from: only for services and routes")
	case q.From != "" && q.Kind == KindService:
		sel.kind = KindEdge
	}
	return sel, nil
}

// row is the row series k is summed into, or false when the query does not
// read k.
func (sel selector) row(k seriesKey) (rowKey, bool) {
	q := sel.q
	if k.kind != sel.kind || (q.Mesh != "" && k.mesh != q.Mesh) || !matches(k.name, q.Name) || !matches(k.from, q.From) {
		return rowKey{}, false
	}
	rk := rowKey{k.mesh, k.name, ""}
	if q.From != "" {
		rk.from = k.from
	}
	return rk, true
}

// Stats answers a query. Services with no traffic are listed too (from
// the resolver) when the query names no caller.
func (a *Aggregator) Stats(q Query) (Result, error) {
	w, n, err := a.window(q.Window)
	if err != nil {
		return Result{}, err
	}
	sel, err := q.selector()
	if err != nil {
		return Result{}, err
	}
	now := a.o.Now()
	cur := a.interval(now)
	accs := map[rowKey]*acc{}
	a.mu.Lock()
	for k, s := range a.series {
		rk, ok := sel.row(k)
		if !ok {
			continue
		}
		c := accs[rk]
		if c == nil {
			c = &acc{mtls: -1}
			accs[rk] = c
		}
		c.add(s, cur, n, now, a.o.StaleAfter)
	}
	a.mu.Unlock()
	if q.Kind == KindService && q.From == "" {
		for _, ref := range a.o.Resolver.Services() {
			rk := rowKey{ref.Mesh, ref.Name, ""}
			if accs[rk] == nil && (q.Mesh == "" || ref.Mesh == q.Mesh) && matches(ref.Name, q.Name) {
				accs[rk] = &acc{mtls: -1}
			}
		}
	}
	res := Result{Window: w.String(), Rows: make([]Row, 0, len(accs))}
	for rk, c := range accs {
		st := c.s.stats(a.o.Resolution)
		st.TCPConnections = c.active
		res.Rows = append(res.Rows, Row{Kind: q.Kind.String(), Mesh: rk.mesh, Name: rk.name, From: rk.from, Stats: st})
	}
	slices.SortFunc(res.Rows, func(x, y Row) int {
		return cmp.Or(cmp.Compare(x.Mesh, y.Mesh), cmp.Compare(x.Name, y.Name), cmp.Compare(x.From, y.From))
	})
	return res, nil
}

// Edges lists who talks to whom over the window (mesh "" for every
// mesh), with whether the edge is mutually authenticated.
func (a *Aggregator) Edges(mesh string, window time.Duration) (EdgeResult, error) {
	w, n, err := a.window(window)
	if err != nil {
		return EdgeResult{}, err
	}
	now := a.o.Now()
	cur := a.interval(now)
	out := EdgeResult{Window: w.String(), Edges: []Edge{}}
	a.mu.Lock()
	for k, s := range a.series {
		if k.kind != KindEdge || (mesh != "" && k.mesh != mesh) {
			continue
		}
		c := acc{mtls: -1}
		c.add(s, cur, n, now, a.o.StaleAfter)
		st := c.s.stats(a.o.Resolution)
		st.TCPConnections = c.active
		if st.Requests == 0 && st.TCPConnections == 0 && c.s.cx == 0 && c.s.tx == 0 && c.s.rx == 0 {
			continue // no traffic in the window
		}
		out.Edges = append(out.Edges, Edge{Mesh: k.mesh, From: k.from, To: k.name, MTLS: mtlsString(c.mtls), Stats: st})
	}
	a.mu.Unlock()
	slices.SortFunc(out.Edges, func(x, y Edge) int {
		return cmp.Or(cmp.Compare(x.Mesh, y.Mesh), cmp.Compare(x.From, y.From), cmp.Compare(x.To, y.To))
	})
	return out, nil
}

func mtlsString(v int8) string {
	switch v {
	case 1:
		return "yes"
	case 0:
		return "no"
	}
	return "unknown"
}
