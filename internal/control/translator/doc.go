// Package translator turns mesh resources (Mesh, Service, Dataplane,
// TrafficPolicy, AccessPolicy and the Gateway API routes HTTPRoute,
// GRPCRoute and TCPRoute) into the Envoy v3 resources (LDS, RDS, CDS, EDS,
// and SDS for the trust bundle of a mesh with mutual TLS) one proxy needs.
// Mutual TLS follows the Mesh's spec.mtls.mode (mtls.go); AccessPolicies
// become RBAC filters on the inbound listeners (access.go); the Mesh's
// spec.tracing becomes tracing on every sidecar connection manager and a
// cluster to the collector (tracing.go); ports of protocol nats and kafka
// get their protocol filter before tcp_proxy on the caller's outbound and
// the server's inbound (messaging.go).
//
// It sits between the store and the xDS server: on every store change the
// control plane builds one Index from all stored objects, asks each
// affected proxy's Resources.DependsOn whether the change concerns it, and
// calls Translate for those proxies only.
//
// Translate is a pure function of the Index and the asking Proxy: the same
// input gives byte-identical output (every list is sorted), so versions can
// be content hashes. A proxy gets only what its configuration reads (config
// scoping): its own inbound listeners, its outbound services and the
// services their routes reach, or, with an outbound HTTP port, every HTTP
// service of its mesh. Objects of other meshes are never visible.
//
// An Index is immutable once built and safe for concurrent Translate calls.
// docs/mesh-traffic.md describes the translation for users.
package translator
