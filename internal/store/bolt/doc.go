// Package bolt is the embedded store backend: one bbolt file (by default
// ~/.trellis/trellis.db), the control plane's zero-set-up default.
//
// # Layout
//
// The file holds three buckets. "resources" is one keyspace keyed by
// kind NUL namespace NUL name (so bbolt's byte order is store.Key order),
// each value the resource's mod revision (8 bytes, big endian) then its
// JSON. "events" is the watch history keyed by revision (8 bytes, big
// endian), one event per revision, trimmed to the newest Options.History
// events. "meta" holds the revision counter and the oldest revision still
// in "events", so revisions continue across restarts.
//
// # Concurrency
//
// Writes are serialised by one mutex that also orders the fan-out to
// watchers, so watchers see events in revision order. A watcher never blocks
// writers: live events go to a per-watcher queue; a watcher whose queue
// reaches Options.WatchQueue undelivered events is dropped (its channel is
// closed while its context is still live; see package store). History
// replay reads the log in short read transactions, so a slow reader never
// holds bbolt's mmap lock against a writer.
//
// Only one process may open the file: Open waits Options.LockTimeout for
// bbolt's file lock and then fails naming the path.
package bolt
