// Package xdsserver serves Envoy v3 xDS (LDS, RDS, CDS, EDS, SDS) to Trellis
// proxies and to proxyless gRPC clients over ADS and the per-type services,
// state of the world and delta, on top of go-control-plane's snapshot cache.
//
// Data flow: the integrator computes a node's resources (the translator's
// output) and hands them to [Server.SetResources]. The server versions each
// resource type by a hash of its content, so a type whose content did not
// change keeps its version and is not sent again; checks that the snapshot
// is consistent (every EDS and RDS resource is named by a cluster or listener
// and the other way round); and swaps it into the cache, which pushes it to
// the node's open streams.
//
// Beside the snapshots the server tracks, per node, its open streams and, per
// resource type, the version last sent, acknowledged (ACK) and rejected
// (NACK) with the client's error. A NACKed version is not sent again: the
// client keeps its last good configuration and the next SetResources with
// different content is pushed (see kgateway-dev/kgateway#14701 for the resend
// loop an unmodified snapshot cache falls into).
//
// Nodes are identified by their node.id. Proxies use "<namespace>/<name>" of
// their Dataplane; proxyless gRPC clients set node metadata
// "trellis.dev/proxyless": true. Proxies are served by an ADS-mode cache
// (responses ordered CDS, EDS, LDS, RDS and held until a request names every
// resource of the snapshot, as Envoy expects); proxyless clients by a cache
// that answers a named request with the subset it names, because grpc-go
// subscribes only to the listeners, routes and clusters it uses.
//
// Concurrency: every method is safe for concurrent use. SetResources calls
// for one node are serialised; calls for different nodes run in parallel.
// Options callbacks are called without the server's locks held.
package xdsserver
