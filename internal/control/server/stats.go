package server

import (
	"fmt"
	"net/http"
	"time"

	"github.com/trellis-mesh/trellis/internal/control/telemetry"
)

// The golden-metrics endpoints (token required):
//
//	GET /api/v1/stats?kind=service|route|dataplane&name=&from=&mesh=&window=1m   telemetry.Result
//	GET /api/v1/edges?mesh=&window=1m                                              telemetry.EdgeResult
//
// kind defaults to service; name and from are namespace/name or a bare
// name (any namespace); window is a Go duration, rounded up to the
// aggregator's resolution and at most its retention. A bad parameter is
// a 400 naming it.

// Stats answers the golden-metrics endpoints; *telemetry.Aggregator
// implements it.
type Stats interface {
	Stats(q telemetry.Query) (telemetry.Result, error)
	Edges(mesh string, window time.Duration) (telemetry.EdgeResult, error)
}

var _ Stats = (*telemetry.Aggregator)(nil)

func (a *api) statsRoutes(mux *http.ServeMux) {
	if a.o.Stats == nil {
		return
	}
	mux.Handle("GET /api/v1/stats", a.auth(a.stats))
	mux.Handle("GET /api/v1/edges", a.auth(a.edges))
}

func window(r *http.Request) (time.Duration, error) {
	s := r.URL.Query().Get("window")
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("window: %q is not a duration (try 1m)", s)
	}
	return d, nil
}

func (a *api) stats(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var tq telemetry.Query
	var err error
	if k := q.Get("kind"); k != "" {
		if tq.Kind, err = telemetry.ParseKind(k); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
	}
	if tq.Window, err = window(r); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	tq.Mesh, tq.Name, tq.From = q.Get("mesh"), q.Get("name"), q.Get("from")
	res, err := a.o.Stats.Stats(tq)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (a *api) edges(w http.ResponseWriter, r *http.Request) {
	win, err := window(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	res, err := a.o.Stats.Edges(r.URL.Query().Get("mesh"), win)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
