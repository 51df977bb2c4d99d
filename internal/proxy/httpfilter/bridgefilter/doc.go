// Package bridgefilter is the trellis.filters.http.bridge HTTP filter: the
// sidecar end of the HTTP bridge to message brokers (internal/bridge,
// docs/bridge.md). Its configuration (an xds.type.v3.TypedStruct of type
// TypeURL) carries the brokers, the subscriptions to deliver and the
// CloudEvents source; the filter answers every request of its listener
// itself (POST /publish/<broker>/<topic>) and never calls the next handler.
//
// Consumers must outlive listener reloads, so the runtime is one
// bridge.Bridge per proxy, kept beside the proxy's metrics registry
// (found through it, without package state): Build hands each new
// configuration to Bridge.Update, which restarts only what changed.
package bridgefilter
