// Package bridge is the sidecar's HTTP bridge to message brokers (Kafka,
// NATS, AMQP 0-9-1), for applications that speak only HTTP
// (docs/bridge.md):
//
//   - Publishing: Bridge is an http.Handler for POST
//     /publish/<broker>/<topic>. The body is a CloudEvent (binary or
//     structured content mode) or a raw body the bridge wraps in one; the
//     answer is 2xx only once the broker acknowledged the message (Kafka
//     acks=all, JetStream publish ack or core NATS flush, AMQP publisher
//     confirm).
//   - Subscriptions: one consumer per Subscription delivers each message
//     as a CloudEvents binary-mode POST to the application; 2xx
//     acknowledges, anything else is retried with exponential back-off up
//     to MaxDeliveries, then the message goes to the dead-letter topic and
//     is acknowledged. At least once.
//
// Update takes the whole configuration and restarts only what changed, so
// a proxy can hand it every listener reload. All methods are safe for
// concurrent use; a Bridge owns goroutines until Close.
package bridge
