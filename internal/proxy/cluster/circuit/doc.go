// Package circuit implements Envoy's cluster circuit breakers and retry
// budgets (envoy.config.cluster.v3.CircuitBreakers; see
// https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/circuit_breaking).
//
// ParseConfig validates a cluster's circuit_breakers into Priorities, one
// Thresholds per routing priority, with Envoy's defaults for a priority left
// out. A cluster keeps one Breakers (a Breaker per priority) for its whole
// life, beside the immutable snapshots: cluster.Manager creates it with the
// cluster and calls Update when a snapshot brings new thresholds, so the
// counts of connections, pending requests, requests and retries in flight
// stay right across updates. The router picks the Breaker of the route's
// priority and brackets each upstream attempt with Acquire/Release; the
// connection pool does the same for connections and for requests waiting
// for one. A refused Acquire means the circuit is open: the caller answers
// 503 with response flag UO (URX for a refused retry).
//
// MeshDefaults is Trellis' thresholds for mesh traffic: Envoy's defaults
// with a 20% retry budget (floor 3) in place of max_retries.
//
// Concurrency: every Breaker and Breakers method is safe for concurrent use.
// Acquire, Release and Stats are lock-free and allocation-free; Acquire
// never lets a count pass the limit it reads (a CompareAndSwap loop) and
// Release never takes a count below zero. Update swaps the limits
// atomically. Breakers must not be copied.
package circuit
