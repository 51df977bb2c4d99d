// Package v1alpha1 holds Trellis' mesh resources: Mesh, Service, Dataplane,
// TrafficPolicy and AccessPolicy. They are Kubernetes-shaped (apiVersion, kind, metadata, spec,
// status) so the same YAML is a document for `trellis apply` in universal mode
// and a custom resource on Kubernetes.
//
// Routing is not defined here: Trellis uses the Gateway API kinds HTTPRoute,
// GRPCRoute and TCPRoute (gateway.networking.k8s.io/v1) as they are, attached to
// a Service through parentRefs (the GAMMA mesh pattern).
//
// Every mesh-scoped resource belongs to the mesh named by its
// "trellis.dev/mesh" label; without the label it belongs to "default".
// Resources are keyed by kind, namespace and name as on Kubernetes; an empty
// namespace means "default".
//
// Besides the types, the package is the resource API's whole contract, in
// the order a write goes through it:
//
//   - Kinds and LookupKind: the kind registry (names, scope, constructor).
//   - Decode, DecodeAll: strict YAML/JSON decoding, errors naming the field
//     path and, for streams, the document; Encode for the way back.
//   - Default: fills what a document may leave out, idempotently.
//   - Validate: every violation of one object at once, with field paths.
//   - Refs and Conditions: what an object references, and its status
//     (Accepted, ResolvedRefs) against the other objects (a Lookup), the
//     way Gateway API implementations report it. Unresolved references
//     never make a write invalid.
//
// All functions are pure and safe for concurrent use, except that Default
// writes to its argument.
package v1alpha1
