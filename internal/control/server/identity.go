package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
	"github.com/trellis-mesh/trellis/internal/control/meshca"
)

// The identity endpoints (token required):
//
//	POST /api/v1/tokens                 {mesh, service, ttl} → {token, id, mesh, service, issuedAt, expiry, revoked}
//	GET  /api/v1/tokens[?mesh=M]        {items: [{id, mesh, service, issuedAt, expiry, revoked}]}, never the tokens
//	POST /api/v1/tokens/{id}/revoke[?mesh=M]   → the record, revoked
//	POST /api/v1/ca/rotate              meshca.RotateRequest → meshca.CAStatus (one step)
//	GET  /api/v1/ca/{mesh}              meshca.CAStatus
//
// An empty mesh means "default". Errors: 400 for a malformed request, 404
// for an unknown mesh, token or a mesh without a CA yet, 409 for a
// rotation step that is not possible now (the message says what it waits
// for) or a lost race with another replica.

// maxIdentityBody bounds the body of a token or rotate request (a CA
// chain and key in PEM fit easily).
const maxIdentityBody = 1 << 20

// Identity is what the identity endpoints need; *meshca.Manager
// implements it.
type Identity interface {
	CreateToken(ctx context.Context, mesh, service string, ttl time.Duration) (meshca.IssuedToken, error)
	ListTokens(ctx context.Context, mesh string) ([]meshca.TokenRecord, error)
	RevokeToken(ctx context.Context, mesh, id string) (meshca.TokenRecord, error)
	Status(ctx context.Context, mesh string) (meshca.CAStatus, error)
	Rotate(ctx context.Context, req meshca.RotateRequest) (meshca.CAStatus, error)
}

var _ Identity = (*meshca.Manager)(nil)

// TokenRequest is the body of POST /api/v1/tokens.
type TokenRequest struct {
	Mesh    string `json:"mesh"`
	Service string `json:"service"`
	// TTL is a Go duration ("8760h"); empty means one year.
	TTL string `json:"ttl,omitempty"`
}

// TokenList is the answer of GET /api/v1/tokens.
type TokenList struct {
	Items []meshca.TokenRecord `json:"items"`
}

func (a *api) identityRoutes(mux *http.ServeMux) {
	if a.o.Metrics != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(a.o.Metrics, promhttp.HandlerOpts{}))
	}
	if a.o.Identity == nil {
		return
	}
	mux.Handle("POST /api/v1/tokens", a.auth(a.createToken))
	mux.Handle("GET /api/v1/tokens", a.auth(a.listTokens))
	mux.Handle("POST /api/v1/tokens/{id}/revoke", a.auth(a.revokeToken))
	mux.Handle("POST /api/v1/ca/rotate", a.auth(a.rotate))
	mux.Handle("GET /api/v1/ca/{mesh}", a.auth(a.caStatus))
}

func meshOr(m string) string {
	if m == "" {
		return v1alpha1.DefaultMesh
	}
	return m
}

func (a *api) createToken(w http.ResponseWriter, r *http.Request) {
	var req TokenRequest
	if !decodeBody(w, r, &req) {
		return
	}
	var ttl time.Duration
	if req.TTL != "" {
		var err error
		if ttl, err = time.ParseDuration(req.TTL); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("ttl %q: %w", req.TTL, err))
			return
		}
	}
	tok, err := a.o.Identity.CreateToken(r.Context(), meshOr(req.Mesh), req.Service, ttl)
	if err != nil {
		a.identityFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, tok)
}

func (a *api) listTokens(w http.ResponseWriter, r *http.Request) {
	list, err := a.o.Identity.ListTokens(r.Context(), r.URL.Query().Get("mesh"))
	if err != nil {
		a.identityFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, TokenList{Items: list})
}

func (a *api) revokeToken(w http.ResponseWriter, r *http.Request) {
	rec, err := a.o.Identity.RevokeToken(r.Context(), r.URL.Query().Get("mesh"), r.PathValue("id"))
	if err != nil {
		a.identityFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

func (a *api) rotate(w http.ResponseWriter, r *http.Request) {
	var req meshca.RotateRequest
	if !decodeBody(w, r, &req) {
		return
	}
	req.Mesh = meshOr(req.Mesh)
	st, err := a.o.Identity.Rotate(r.Context(), req)
	if err != nil {
		a.identityFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (a *api) caStatus(w http.ResponseWriter, r *http.Request) {
	st, err := a.o.Identity.Status(r.Context(), r.PathValue("mesh"))
	if err != nil {
		a.identityFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// decodeBody reads a strict JSON body into v, answering 400 itself when it
// cannot.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxIdentityBody))
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err = dec.Decode(v); err == nil && dec.More() {
			err = errors.New("trailing data after the JSON object")
		}
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("request body: %w", err))
		return false
	}
	return true
}

func (a *api) identityFail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, meshca.ErrInvalid):
		writeError(w, http.StatusBadRequest, err)
	case errors.Is(err, meshca.ErrUnknownMesh), errors.Is(err, meshca.ErrNotReady):
		writeError(w, http.StatusNotFound, err)
	case errors.Is(err, meshca.ErrRotation):
		writeError(w, http.StatusConflict, err)
	default:
		a.fail(w, err)
	}
}
