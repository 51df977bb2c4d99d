// Package store is the control plane's resource store: one Store interface
// over Kubernetes-shaped JSON documents, with etcd-style revisions and watch,
// and the sentinel errors every backend returns.
//
// # Where it sits
//
// The API server and the manager above it write resources through a Store;
// the translator and the xDS server learn about changes with List followed
// by Watch from the List revision. Backends live in subpackages: bolt (an
// embedded bbolt file, the default) and etcd (several control planes sharing
// one etcd cluster). storetest holds the conformance suite both run.
// Backends store bytes: validation and defaulting happen above them.
//
// # Revisions
//
// Every successful write (Create, Update, Delete) advances one store-wide
// revision, strictly increasing, as in etcd. A Resource's Revision is the
// revision of the write that last changed it (etcd's mod revision), and it is
// what Update and Delete compare against for optimistic concurrency.
// Revisions need not be contiguous (an etcd cluster shared with other data
// advances for writes outside the store's prefix), and a fresh store may
// start above zero (etcd starts at 1).
//
// # Watch
//
// Watch(ctx, fromRev) delivers every event with Revision > fromRev, in
// revision order, first from the store's history and then live. A backend
// keeps a bounded history: when the events after fromRev are no longer all
// kept, Watch returns ErrCompacted and the caller recovers with List, then
// Watch from the revision List returned.
//
// The channel is closed when ctx ends, when the store is closed, and when the
// watch is dropped. A watch is dropped when its reader falls too far behind
// (more than a backend-defined number of undelivered events: writers never
// wait for readers), when history it still had to replay was compacted, or
// when the backend's own watch fails (an etcd watch cancelled by the server).
// A reader tells a drop from its own cancellation by checking ctx: a channel
// closed while ctx.Err() == nil was dropped. The reader then calls Watch again
// from the Revision of the last event it received (or the List revision if it
// received none); if that history is gone, Watch says ErrCompacted and the
// reader re-Lists.
//
// # Concurrency
//
// All Store methods are safe for concurrent use. Values passed in are not
// retained. Values returned and delivered are read-only: a backend may share
// one slice between a write's result and every watcher's event.
package store
