// Package server is the control plane's REST API: apply, get, list, delete
// and describe mesh resources, JSON in and out, behind a bearer token.
//
//	POST   /api/v1/apply                       multi-document YAML or JSON
//	GET    /api/v1/{kind}[?namespace=NS]       list (kind: singular, plural or short name)
//	GET    /api/v1/{kind}/{name}[?namespace=NS]
//	GET    /api/v1/{kind}/{name}/describe[?namespace=NS]
//	DELETE /api/v1/{kind}/{name}[?namespace=NS]
//	GET    /healthz                            no token needed
//	GET    /metrics                            Prometheus, no token needed
//	POST   /api/v1/tokens, GET /api/v1/tokens, POST /api/v1/tokens/{id}/revoke,
//	POST   /api/v1/ca/rotate, GET /api/v1/ca/{mesh}   identity (identity.go)
//	GET    /api/v1/stats, GET /api/v1/edges    golden metrics (stats.go)
//	GET    /api/v1/health                      store, reconciler, xDS (health.go)
//	GET    /api/v1/tap?target=...              live requests, NDJSON stream (tap.go)
//	GET    /debug/pprof/...                    Go's profiler
//	GET    /ui/                                the web dashboard (ui.go)
//
// Errors are JSON objects {"error": "...", "details": [...]} with 400 for a
// malformed request, 401 without a valid token, 404 for an unknown kind or
// object, 409 for a lost write race and 422 for a refused apply (details
// then name every document and field at fault).
package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
	"github.com/trellis-mesh/trellis/internal/control/manager"
	"github.com/trellis-mesh/trellis/internal/store"
)

// maxApplyBody bounds the body of one apply.
const maxApplyBody = 16 << 20

// Describer lists the proxies an object affects.
type Describer interface {
	Affected(ctx context.Context, obj v1alpha1.Object) ([]string, error)
}

// Options configure a Handler.
type Options struct {
	Manager *manager.Manager
	// Token is the bearer token every /api request must carry. Empty
	// disables authentication (tests only).
	Token     string
	Describer Describer // may be nil
	// Identity serves the token and CA endpoints (identity.go); nil
	// leaves them out.
	Identity Identity
	// Metrics is served at GET /metrics, without a token; nil leaves the
	// endpoint out.
	Metrics prometheus.Gatherer
	// Stats serves the golden-metrics endpoints (stats.go); nil leaves
	// them out.
	Stats Stats
	// Health serves GET /api/v1/health (health.go); nil leaves it out.
	Health HealthSource
	// Tap serves GET /api/v1/tap (tap.go); nil leaves it out.
	Tap    Tapper
	Logger *slog.Logger
}

// Describe is the answer of the describe endpoint.
type Describe struct {
	Object  json.RawMessage `json:"object"`
	Refs    []v1alpha1.Ref  `json:"refs,omitempty"`
	Proxies []string        `json:"proxies"`
}

// ApplyResponse is the answer of a successful apply.
type ApplyResponse struct {
	Results []manager.Result `json:"results"`
}

// ErrorResponse is the body of every error answer.
type ErrorResponse struct {
	Error   string                  `json:"error"`
	Details []manager.DocumentError `json:"details,omitempty"`
}

// ListResponse is the answer of a list.
type ListResponse struct {
	Items []json.RawMessage `json:"items"`
}

// New returns the API handler.
func New(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	a := &api{o: o}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	// Go's profiler, for operators chasing CPU or memory: token required.
	mux.Handle("GET /debug/pprof/", a.auth(pprof.Index))
	mux.Handle("GET /debug/pprof/profile", a.auth(pprof.Profile))
	mux.Handle("GET /debug/pprof/trace", a.auth(pprof.Trace))
	mux.Handle("POST /api/v1/apply", a.auth(a.apply))
	mux.Handle("GET /api/v1/{kind}", a.auth(a.list))
	mux.Handle("GET /api/v1/{kind}/{name}", a.auth(a.get))
	mux.Handle("GET /api/v1/{kind}/{name}/describe", a.auth(a.describe))
	mux.Handle("DELETE /api/v1/{kind}/{name}", a.auth(a.delete))
	a.identityRoutes(mux)
	a.statsRoutes(mux)
	a.healthRoutes(mux)
	a.tapRoutes(mux)
	a.uiRoutes(mux)
	return mux
}

type api struct{ o Options }

func (a *api) auth(h func(http.ResponseWriter, *http.Request)) http.Handler {
	want := []byte("Bearer " + a.o.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.o.Token != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			writeError(w, http.StatusUnauthorized, errors.New("missing or wrong token (set --token or TRELLIS_TOKEN)"))
			return
		}
		h(w, r)
	})
}

func (a *api) apply(w http.ResponseWriter, r *http.Request) {
	body := http.MaxBytesReader(w, r.Body, maxApplyBody)
	results, err := a.o.Manager.Apply(r.Context(), body)
	if err != nil {
		a.fail(w, err)
		return
	}
	for _, res := range results {
		if res.Action != manager.Unchanged {
			a.o.Logger.Info("resource applied", "kind", res.Kind, "namespace", res.Namespace, "name", res.Name, "action", res.Action)
		}
	}
	writeJSON(w, http.StatusOK, ApplyResponse{Results: results})
}

func (a *api) list(w http.ResponseWriter, r *http.Request) {
	info, ok := kind(w, r)
	if !ok {
		return
	}
	objs, err := a.o.Manager.List(r.Context(), info.Kind, r.URL.Query().Get("namespace"))
	if err != nil {
		a.fail(w, err)
		return
	}
	resp := ListResponse{Items: make([]json.RawMessage, 0, len(objs))}
	for _, obj := range objs {
		data, err := v1alpha1.Encode(obj)
		if err != nil {
			a.fail(w, err)
			return
		}
		resp.Items = append(resp.Items, data)
	}
	writeJSON(w, http.StatusOK, resp)
}

func (a *api) get(w http.ResponseWriter, r *http.Request) {
	if _, data, ok := a.object(w, r); ok {
		writeRaw(w, http.StatusOK, data)
	}
}

// object reads the object the request names, with its status, and its
// JSON; on failure it has answered the request.
func (a *api) object(w http.ResponseWriter, r *http.Request) (v1alpha1.Object, []byte, bool) {
	k, ok := key(w, r)
	if !ok {
		return nil, nil, false
	}
	obj, err := a.o.Manager.Get(r.Context(), k)
	if err != nil {
		a.fail(w, err)
		return nil, nil, false
	}
	data, err := v1alpha1.Encode(obj)
	if err != nil {
		a.fail(w, err)
		return nil, nil, false
	}
	return obj, data, true
}

func (a *api) describe(w http.ResponseWriter, r *http.Request) {
	obj, data, ok := a.object(w, r)
	if !ok {
		return
	}
	d := Describe{Object: data, Refs: v1alpha1.Refs(obj), Proxies: []string{}}
	if a.o.Describer != nil {
		var err error
		if d.Proxies, err = a.o.Describer.Affected(r.Context(), obj); err != nil {
			a.fail(w, err)
			return
		}
		if d.Proxies == nil {
			d.Proxies = []string{} // "proxies": [], never null
		}
	}
	writeJSON(w, http.StatusOK, d)
}

func (a *api) delete(w http.ResponseWriter, r *http.Request) {
	k, ok := key(w, r)
	if !ok {
		return
	}
	obj, err := a.o.Manager.Delete(r.Context(), k)
	if err != nil {
		a.fail(w, err)
		return
	}
	a.o.Logger.Info("resource deleted", "kind", k.Kind, "namespace", k.Namespace, "name", k.Name)
	data, err := v1alpha1.Encode(obj)
	if err != nil {
		a.fail(w, err)
		return
	}
	writeRaw(w, http.StatusOK, data)
}

func kind(w http.ResponseWriter, r *http.Request) (v1alpha1.KindInfo, bool) {
	name := r.PathValue("kind")
	info, ok := v1alpha1.LookupKind(name)
	if !ok {
		var known []string
		for _, k := range v1alpha1.Kinds() {
			known = append(known, k.Kind)
		}
		writeError(w, http.StatusNotFound, errors.New("unknown kind "+strconvQuote(name)+"; known kinds: "+strings.Join(known, ", ")))
	}
	return info, ok
}

func key(w http.ResponseWriter, r *http.Request) (store.Key, bool) {
	info, ok := kind(w, r)
	if !ok {
		return store.Key{}, false
	}
	k := store.Key{Kind: info.Kind, Name: r.PathValue("name")}
	if info.Namespaced {
		k.Namespace = r.URL.Query().Get("namespace")
		if k.Namespace == "" {
			k.Namespace = v1alpha1.DefaultNamespace
		}
	}
	return k, true
}

func (a *api) fail(w http.ResponseWriter, err error) {
	var invalid *manager.InvalidError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &invalid):
		writeJSON(w, http.StatusUnprocessableEntity, ErrorResponse{Error: "refused, nothing changed", Details: invalid.Documents})
	case errors.Is(err, manager.ErrNoDocuments), errors.Is(err, store.ErrInvalidKey):
		writeError(w, http.StatusBadRequest, err)
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, err)
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, err)
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrExists):
		writeError(w, http.StatusConflict, err)
	case errors.Is(err, context.Canceled):
		writeError(w, 499, err)
	default:
		a.o.Logger.Error("api request failed", "error", err)
		writeError(w, http.StatusInternalServerError, err)
	}
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, ErrorResponse{Error: err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		code, data = http.StatusInternalServerError, []byte(`{"error":"encoding the answer failed"}`)
	}
	writeRaw(w, code, data)
}

func writeRaw(w http.ResponseWriter, code int, data []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(data)
	io.WriteString(w, "\n")
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }
