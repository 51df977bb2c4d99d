// Package tap is the control plane's side of `trellis tap`
// (docs/tap.md). A Hub keeps the tap stream every connected proxy opens
// (telemetry/tap's /trellis.tap.v1.Tap/Watch); Hub.Tap serves one API
// client: it resolves the target to the proxies involved and what each
// should match, subscribes them (and proxies that connect later), merges
// their events under the tap's global rate cap, names the services and
// identities the proxies could not know, and cancels the subscriptions
// when the client leaves.
//
// Concurrency: a Hub is safe for concurrent use. Each proxy stream has
// one sending goroutine fed by a bounded queue; events reach a tap
// through a bounded queue too and are dropped (and counted) when it is
// full, so a slow API client never holds up a proxy's stream.
package tap
