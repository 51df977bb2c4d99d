// Package natsfilter is Trellis' NATS network filter
// (trellis.filters.network.nats): placed before tcp_proxy in a filter chain,
// it parses the NATS client protocol on each proxied connection in both
// directions, counts messages and bytes per subject (deliveries under the
// subscribed pattern), applies a per-subject publish/subscribe policy, and
// optionally adds a W3C traceparent header to published messages. Allowed
// bytes flow through unchanged.
//
// Configuration is an xds.type.v3.TypedStruct with type_url TypeURL (there
// is no Envoy NATS filter to borrow a type from); see README.md.
//
// A Filter is built once per snapshot and is immutable. Wrap is called once
// per connection; the connection it returns is read by one goroutine
// (client → server) and written by another (server → client).
package natsfilter
