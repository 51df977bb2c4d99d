// Package listener accepts downstream connections for Envoy Listener
// resources, chooses a filter chain per connection (destination port, SNI,
// transport protocol, ALPN, in Envoy's order of specificity), terminates TLS
// when the chain has a transport socket, and hands the connection to the
// chain's HTTP connection manager or TCP proxy.
//
// A Listener value is one snapshot's configuration and is immutable. The
// Manager outlives snapshots: it owns the sockets and the HTTP servers, so a
// configuration update keeps listening sockets and established connections
// whose listener and filter chain still exist. Apply is all-or-nothing: when
// a new socket cannot be bound, nothing changes.
package listener
