// Package ui is the control plane's web dashboard: static pages embedded
// in the binary (no CDN, no build step at run time) that read the
// control plane's token-protected JSON API from the browser.
package ui

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed assets
var assets embed.FS

// Handler serves the dashboard's files under the path it is mounted at
// (strip the prefix before calling it). The files hold no mesh data, so
// they need no token; the page asks the API with the token the user gives.
func Handler() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.FileServerFS(sub)
}
