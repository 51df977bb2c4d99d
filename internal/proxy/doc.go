// Package proxy assembles Trellis' data plane: it turns a validated Envoy
// bootstrap into a runtime snapshot (clusters, listeners with their filter
// chains, route tables), applies it all-or-nothing, serves the admin
// interface, reloads on request and drains on shutdown.
//
// Apply and Reload are serialized by the Proxy. Building a snapshot never
// touches the running one: clusters and listeners are built first, then
// sockets are bound, and only then is the new snapshot swapped in. A failure
// at any step leaves the running configuration as it was.
package proxy
