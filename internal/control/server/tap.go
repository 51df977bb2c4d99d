package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/trellis-mesh/trellis/internal/control/tap"
)

// The tap endpoint (token required; docs/tap.md is the contract):
//
//	GET /api/v1/tap?target=service/NS/NAME|service/NAME|NAME|dataplane/NS/NAME|dataplane/NAME
//	               &path=PREFIX&method=M&authority=A&maxRps=N&headers=true&body=N
//
// answers application/x-ndjson, one JSON object a line, flushed per line,
// until the client leaves: {"type":"event",...} and
// {"type":"notice","message":"..."}. A bad parameter is a 400 naming it,
// an unknown target a 404. headers=true captures headers (redacted),
// body=N the first N bytes (1..4096) of bodies (not redacted): every API
// token is the admin token today, so any caller may.

// Tapper serves taps; *tap.Hub implements it.
type Tapper interface {
	Tap(ctx context.Context, req tap.Request, emit func(tap.Line) error) error
}

var _ Tapper = (*tap.Hub)(nil)

func (a *api) tapRoutes(mux *http.ServeMux) {
	if a.o.Tap == nil {
		return
	}
	mux.Handle("GET /api/v1/tap", a.auth(a.tap))
}

// tapRequest reads the query of a tap request.
func tapRequest(r *http.Request) (tap.Request, error) {
	q := r.URL.Query()
	if q.Get("target") == "" {
		return tap.Request{}, fmt.Errorf("%w: target: required (service/NS/NAME or dataplane/NS/NAME)", tap.ErrInvalid)
	}
	t, err := tap.ParseTarget(q.Get("target"))
	if err != nil {
		return tap.Request{}, err
	}
	req := tap.Request{Target: t, PathPrefix: q.Get("path"), Method: q.Get("method"), Authority: q.Get("authority")}
	if s := q.Get("maxRps"); s != "" {
		if req.MaxRPS, err = strconv.Atoi(s); err != nil || req.MaxRPS < 1 || req.MaxRPS > tap.MaxMaxRPS {
			return tap.Request{}, fmt.Errorf("%w: maxRps: %q: must be a whole number 1..%d", tap.ErrInvalid, s, tap.MaxMaxRPS)
		}
	}
	if s := q.Get("headers"); s != "" {
		if req.Headers, err = strconv.ParseBool(s); err != nil {
			return tap.Request{}, fmt.Errorf("%w: headers: %q: want true or false", tap.ErrInvalid, s)
		}
	}
	if s := q.Get("body"); s != "" {
		if req.Body, err = strconv.Atoi(s); err != nil || req.Body < 0 || req.Body > tap.MaxBody {
			return tap.Request{}, fmt.Errorf("%w: body: %q: want 0 (off) or a number of bytes 1..%d", tap.ErrInvalid, s, tap.MaxBody)
		}
	}
	return req, req.Validate()
}

func (a *api) tap(w http.ResponseWriter, r *http.Request) {
	req, err := tapRequest(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	rc := http.NewResponseController(w)
	started := false
	enc := json.NewEncoder(w)
	emit := func(l tap.Line) error {
		if !started {
			started = true
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.WriteHeader(http.StatusOK)
		}
		if err := enc.Encode(l.JSON()); err != nil {
			return err
		}
		return rc.Flush()
	}
	err = a.o.Tap.Tap(r.Context(), req, emit)
	switch {
	case err == nil || started:
		if err != nil && r.Context().Err() == nil {
			a.o.Logger.Debug("tap ended", "error", err)
		}
	case errors.Is(err, tap.ErrInvalid):
		writeError(w, http.StatusBadRequest, err)
	case errors.Is(err, tap.ErrNotFound):
		writeError(w, http.StatusNotFound, err)
	default:
		writeError(w, http.StatusInternalServerError, err)
	}
}
