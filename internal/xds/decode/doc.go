// Package decode turns Envoy v3 configuration documents into validated
// protobuf messages for the proxy.
//
// It is the proxy's edge: a bootstrap file (YAML or JSON) is decoded strictly
// with protojson (unknown fields are errors that carry their path), checked
// with the protoc-gen-validate rules that ship with go-control-plane, and then
// walked against the table of fields the proxy implements (Supported). Any
// populated field outside that table is an error naming it, e.g.
// "static_resources.clusters[2].upstream_connection_options: not supported", so nothing
// in a configuration is silently ignored.
//
// The package holds no state; all functions are safe for concurrent use.
package decode
