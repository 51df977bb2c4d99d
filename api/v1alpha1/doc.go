// Package v1alpha1 holds Trellis' mesh resources: Mesh, Service, Dataplane and
// TrafficPolicy. They are Kubernetes-shaped (apiVersion, kind, metadata, spec,
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
package v1alpha1
