// Package etcd is the shared store backend: several trellis control
// replicas keep their resources in one etcd cluster, and elect a leader for
// singleton work.
//
// # Layout
//
// A resource lives at <prefix>/resources/<kind>/<namespace>/<name> (the
// namespace is empty for cluster-scoped kinds: "/trellis/resources/Mesh//default"),
// its value the JSON document. A Resource's Revision is the etcd key's
// ModRevision and the store revision is etcd's: it also advances for writes
// outside the prefix. Optimistic concurrency is an etcd transaction comparing
// ModRevision. Keys under <prefix>/resources/ that do not have this shape
// are ignored by List and Watch. Leader election uses <prefix>/leader/.
//
// # Watch
//
// Watch is an etcd watch from fromRev+1 over the resources prefix with
// previous values (for delete events). Whether fromRev is still in etcd's
// history is checked before the watch starts, so compaction is reported by
// Watch as store.ErrCompacted; a compaction that overtakes a running watch,
// a watch cancelled by etcd (for example when its member loses the leader)
// and a reader more than 10,000 events behind all drop the watch (its channel
// closes while the caller's context is live; see package store). etcd keeps
// history until the cluster is compacted (etcd's --auto-compaction-* flags).
//
// # Concurrency
//
// Store and Leader are safe for concurrent use. The etcd client belongs to
// the caller: Close stops the store's watches and leaves the client open.
package etcd
