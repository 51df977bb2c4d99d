// Package ui is the control plane's web dashboard: static pages embedded
// in the binary (no CDN, no build step, no npm at build or run time) that
// read the control plane's token-protected JSON API from the browser.
//
// The page is plain HTML, CSS and ES modules (assets/): app.js routes
// between the views (views.js: overview and service graph, services,
// routes; resources.js: resources and dataplanes; tap.js: the live tap),
// api.js reads the API with the token from the URL fragment
// (/ui/#token=...), graph.js and charts.js draw inline SVG. docs/dashboard.md
// describes it for users; test/ui drives it in Chromium.
package ui

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed assets
var assets embed.FS

// contentSecurityPolicy lets the page load only its own files and talk
// only to its own origin: no inline script, no third-party anything.
// Inline SVG needs no exception; styles set from scripts go through the
// CSSOM, which style-src does not restrict.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Handler serves the dashboard's files under the path it is mounted at
// (strip the prefix before calling it). The files hold no mesh data, so
// they need no token; the page asks the API with the token the user gives.
func Handler() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// The files change only with the binary; revalidate so an upgraded
		// control plane is never paired with an old page.
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
