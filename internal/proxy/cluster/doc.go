// Package cluster turns Envoy Cluster resources into upstream clusters the
// router sends requests to: endpoint sets (static or resolved by DNS), a
// load-balancing picker per endpoint-set version, and pooled upstream
// connections (HTTP/1.1 or multiplexed HTTP/2, plain or TLS).
//
// A Manager outlives configuration snapshots. It owns the long-lived state:
// hosts keyed by (cluster, address) with their in-flight counters, and the
// connection pools (http.Transport) of each cluster, which are kept when a
// cluster's transport settings are unchanged across an update. Build makes a
// new, immutable Set for a snapshot; Commit starts the Set's DNS refresh and
// retires what the previous Set had that the new one does not.
//
// The Manager also keeps, per cluster name, the queue of HTTP/1.1 requests
// waiting for an upstream connection (circuit_breakers max_pending_requests,
// see pending.go): requests that find no idle connection while
// max_connections are open wait there in FIFO order for a connection that
// finishes (handed over directly) or closes (freeing a slot to dial).
//
// Cluster methods are safe for concurrent use; Pick does not allocate.
package cluster
