// Package outlier is a cluster's outlier detector: passive health checking
// that ejects upstream hosts which answer worse than their peers, with
// Envoy's OutlierDetection (envoy.config.cluster.v3) as the specification
// (https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/outlier).
//
// Where it sits: cluster.Manager creates one Detector per cluster that has
// outlier_detection and keeps it across configuration snapshots, calling
// Update with each new Config and SetHosts with each new endpoint set. The
// router (or TCP proxy) calls Report with the outcome of every upstream
// attempt. Ejecting a host sets lb.Host's ejected flag (/clusters shows it
// as failed_outlier_check) and calls Options.OnChange so the cluster
// rebuilds its picker without the host; returning it clears the flag and
// calls OnChange again.
//
// Detection runs in two places, as in Envoy:
//   - consecutive_5xx, consecutive_gateway_failure and
//     consecutive_local_origin_failure eject inline, in the Report call that
//     reaches the threshold;
//   - success rate and failure percentage are evaluated by Run once per
//     interval over the counts of the interval just ended, and the same
//     sweep returns hosts whose ejection time has passed.
//
// Concurrency: Report is lock-free and allocation-free (per-host atomic
// counters found through an atomically swapped host table) and may be
// called from any number of goroutines. Ejection, return, Update and
// SetHosts take one mutex; OnChange is called after it is released, one
// call at a time. Run must be called once; it returns when its context
// ends. A Detector must not be copied.
package outlier
