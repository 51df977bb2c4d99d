// Package health is Trellis' active health checker: it probes each host of a
// cluster with the cluster's health_checks (HTTP, TCP or gRPC, as Envoy's
// envoy.config.core.v3.HealthCheck configures them) and records the verdict
// on the host with lb.Host.SetFailedActiveHealthCheck. The cluster builds its
// pickers from the hosts that are Healthy, so a failing host stops receiving
// traffic once its verdict flips.
//
// It sits beside the cluster snapshot, not in it. ParseConfig validates the
// proto at the edge into an immutable Config; a Checker per cluster is kept
// by the cluster manager across snapshots, fed with Update (new Config) and
// SetHosts (the cluster's current hosts), and runs while Run's context
// lives. Verdicts, threshold counters and connections of hosts that remain
// survive updates.
//
// Each host is checked by its own goroutine, which alone owns the host's
// counters and connection; the Checker's mutex guards the host set and the
// configuration. OnChange is called after a verdict flips, outside the lock.
// The state machine (hostState.record, Config.next) is pure and separate
// from the network probes, so thresholds and intervals are tested with
// testing/synctest.
package health
