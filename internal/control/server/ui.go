package server

import (
	"net/http"

	"github.com/trellis-mesh/trellis/internal/ui"
)

// uiRoutes serves the web dashboard at /ui/ (and sends / there). Its
// files need no token; the data it shows comes from the /api endpoints,
// which do.
func (a *api) uiRoutes(mux *http.ServeMux) {
	mux.Handle("GET /ui/", http.StripPrefix("/ui", ui.Handler()))
	mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
}
