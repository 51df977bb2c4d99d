// Package tap is the proxy side of `trellis tap` (docs/tap.md): a Tap
// holds the subscriptions the control plane sent, matches the requests
// the HTTP connection manager finishes against them, caps each
// subscription's rate with a token bucket, redacts captured headers,
// keeps the first bytes of bodies for subscriptions that ask for them
// (Capture, BodyLimit; bodies are not redacted), and hands events to the
// stream to the control plane through a bounded queue. It also defines that stream: the gRPC service
// /trellis.tap.v1.Tap/Watch, served by the control plane
// (internal/control/tap) and opened by every proxy (Tap.Run).
//
// Concurrency: Observe is called by every request goroutine; with no
// subscription it costs one atomic load (Active). Subscriptions change
// only on the stream's goroutine and are published as an immutable list
// swapped atomically. Observe never blocks: an event that finds the queue
// full is dropped and counted.
package tap
