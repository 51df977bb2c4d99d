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
//	GET /api/v1/stats?kind=topic&name=TOPIC&from=BROKER&mesh=&window=1m           telemetry.TopicResult
//	GET /api/v1/edges?mesh=&window=1m                                              telemetry.EdgeResult
//	GET /api/v1/stats/series?kind=service|route|dataplane&name=&from=&mesh=&window=5m&step=10s
//	                                                                               telemetry.SeriesResult
//	GET /api/v1/stats/proxies                                                      ProxiesResponse
//
// kind defaults to service; name and from are namespace/name or a bare
// name (any namespace); window is a Go duration, rounded up to the
// aggregator's resolution and at most its retention (a series' window
// defaults to 5m, a stat's to 1m); step, the width of one point of a
// series, likewise (default: the resolution). A bad parameter is a 400
// naming it. With kind=topic the rows are messaging metrics per broker
// and topic (telemetry.TopicRow): name is a topic or NATS subject and from
// a broker (a Broker's name, or a Service port namespace/name:port). The
// dashboard (internal/ui) draws its charts from series and its
// certificate column from proxies.

// Stats answers the golden-metrics endpoints; *telemetry.Aggregator
// implements it.
type Stats interface {
	Stats(q telemetry.Query) (telemetry.Result, error)
	Edges(mesh string, window time.Duration) (telemetry.EdgeResult, error)
	Series(q telemetry.SeriesQuery) (telemetry.SeriesResult, error)
	Topics(q telemetry.TopicQuery) (telemetry.TopicResult, error)
	Proxies() []telemetry.ProxyState
}

// ProxiesResponse is the answer of GET /api/v1/stats/proxies: the proxies
// whose metrics reached this replica, with their leaf certificate's
// expiry.
type ProxiesResponse struct {
	Items []telemetry.ProxyState `json:"items"`
}

var _ Stats = (*telemetry.Aggregator)(nil)

func (a *api) statsRoutes(mux *http.ServeMux) {
	if a.o.Stats == nil {
		return
	}
	mux.Handle("GET /api/v1/stats", a.auth(a.stats))
	mux.Handle("GET /api/v1/edges", a.auth(a.edges))
	mux.Handle("GET /api/v1/stats/series", a.auth(a.series))
	mux.Handle("GET /api/v1/stats/proxies", a.auth(a.proxies))
}

func window(r *http.Request) (time.Duration, error) { return duration(r, "window", "1m") }

// duration reads the query parameter name, a Go duration; 0 when absent.
func duration(r *http.Request, name, example string) (time.Duration, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a duration (try %s)", name, s, example)
	}
	return d, nil
}

func (a *api) series(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var sq telemetry.SeriesQuery
	var err error
	if k := q.Get("kind"); k != "" {
		if sq.Kind, err = telemetry.ParseKind(k); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
	}
	if sq.Window, err = window(r); err == nil {
		sq.Step, err = duration(r, "step", "10s")
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	sq.Mesh, sq.Name, sq.From = q.Get("mesh"), q.Get("name"), q.Get("from")
	res, err := a.o.Stats.Series(sq)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (a *api) proxies(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, ProxiesResponse{Items: a.o.Stats.Proxies()})
}

func (a *api) stats(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("kind") == telemetry.KindTopicName {
		a.topics(w, r)
		return
	}
	var tq telemetry.Query
	var err error
	if k := q.Get("kind"); k != "" {
		if tq.Kind, err = telemetry.ParseKind(k); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("kind: must be one of service, route, dataplane, topic (got %q)", k))
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

// topics answers GET /api/v1/stats?kind=topic.
func (a *api) topics(w http.ResponseWriter, r *http.Request) {
	win, err := window(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	q := r.URL.Query()
	res, err := a.o.Stats.Topics(telemetry.TopicQuery{Mesh: q.Get("mesh"), Name: q.Get("name"), Broker: q.Get("from"), Window: win})
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
