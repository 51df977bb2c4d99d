// Package examples embeds the example configurations so that `trellis
// demo` runs exactly what the files in this folder say.
package examples

import _ "embed"

// ProxyBootstrap is proxy/bootstrap.yaml.
//
//go:embed proxy/bootstrap.yaml
var ProxyBootstrap []byte
