// Package tlsx turns Envoy's TLS transport socket contexts
// (envoy.extensions.transport_sockets.tls.v3 DownstreamTlsContext and
// UpstreamTlsContext) into crypto/tls configs, and peeks at a connection's
// ClientHello for filter chain matching (Envoy's tls_inspector).
//
// Data flow: the xDS decoder validates a listener or cluster and rejects
// every field this package does not implement (see README.md); the snapshot
// builder then calls ServerConfig for each filter chain's
// DownstreamTlsContext and ClientConfig for each cluster's
// UpstreamTlsContext, once per snapshot, never per connection. Files named by
// DataSources are read at that time; rotation means building a new snapshot.
// On accept, the listener calls PeekClientHello to learn SNI and ALPN before
// choosing a filter chain, then hands the replay conn to tls.Server.
//
// Envoy semantics are kept where crypto/tls differs: peers are verified by a
// VerifyConnection callback against trusted_ca and the SAN matchers, not by
// hostname; an upstream without trusted_ca is not verified at all; a server
// with alpn_protocols carries on without ALPN when the client offers no
// common protocol. README.md lists every deviation.
//
// The returned *tls.Config values are immutable after return and safe for
// concurrent use by any number of connections, as crypto/tls requires.
// PeekClientHello may be called concurrently on different connections.
package tlsx
