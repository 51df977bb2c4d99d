// Package lb implements the upstream load-balancing policies of an Envoy
// cluster: ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH and MAGLEV, with
// Envoy's semantics
// (https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/load_balancing/load_balancers).
//
// # Where it sits
//
// The xDS decoder validates a cluster's lb_policy and its *_lb_config with
// [ValidateLeastRequest], [ValidateRingHash] and [ValidateMaglev], and turns
// it into a [Policy]. cluster.Manager owns the long-lived [Host] values
// (keyed by cluster and address, carrying the in-flight counter) and, each
// time a cluster's endpoint set changes (EDS update, health or outlier
// change), calls [Policy.Build] with the hosts that may receive traffic. The
// resulting [Picker] is published in the cluster snapshot; the router calls
// [Picker.Pick] once per upstream attempt, bracketing the request with
// [Host.Begin] and [Host.End].
//
// # Concurrency
//
//   - Policies are stateless values; Build may be called concurrently.
//   - A Picker is immutable once built: tables, rings and weights are computed
//     in Build and never change. The only shared mutable state a Pick touches
//     is an atomic counter (round robin) and the hosts' atomic in-flight
//     counters (least request).
//   - Pick is safe for concurrent use, lock-free and allocation-free.
//     Randomness comes from math/rand/v2's top-level functions, which are
//     goroutine-safe and do not allocate.
//   - Build copies what it needs from members; the caller may reuse the slice.
//
// Package lbtest holds the conformance suite every policy passes.
package lb
