// Package hcm is Trellis' HTTP connection manager: Envoy's
// envoy.filters.network.http_connection_manager. It terminates HTTP/1.1 and
// HTTP/2 (TLS ALPN or h2c prior knowledge) from downstream connections,
// matches each request against the route table, and forwards it to an
// upstream cluster (the router filter), or answers it locally.
//
// A Config is built once per snapshot (Build) and never changes. A Server is
// long-lived: it owns the net/http server that parses connections and holds
// an atomic pointer to the current Config. Each request loads that pointer
// once, so a request finishes on the snapshot it started with while new
// requests on the same keep-alive connection see the new one.
//
// Every response the proxy makes itself carries an x-trellis-reason header
// with a stable reason code and a one-line body naming the route or cluster
// involved; the access log records Envoy's response flags.
package hcm
