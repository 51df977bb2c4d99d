// Package meshca is the control plane's side of workload identity: each
// mesh's CA state and dataplane-token key kept in the store, the tokens
// issued for it, the gRPC certificate service proxies call
// (/trellis.identity.v1.Identity/Sign), staged CA rotation, and the trust
// bundle the translator sends to proxies as an SDS secret.
//
// # Where it sits
//
// The REST API (control/server) creates, lists and revokes tokens and drives
// rotations through a Manager; proxies trade a token and a CSR for a
// certificate over the xDS gRPC port (Manager.Register); the reconciler
// reads Manager.Bundle and is told of changes by Manager.Subscribe. The
// signing itself is identity.Authority's (token check, strict CSR check,
// ca.CA.Sign).
//
// # Store records
//
// Not mesh resources (v1alpha1.LookupKind does not know their kinds):
//
//	CA//<mesh>          JSON of *ca.State (keys in clear: protect the store)
//	TokenKey//<mesh>    token.MarshalKey of the mesh's ES256 token key
//	Token/<mesh>/<id>   TokenRecord: id, mesh, service, issuedAt, expiry, revoked
//	Leaf/<mesh>/<node>  a proxy's latest leaf: serial, issuing CA, notAfter (for rotation progress)
//
// The CA and token key of a mesh are created on its first use (first token,
// first rotation or first certificate request) with store.Create, so two
// replicas racing create one of each and both adopt the winner's.
//
// # Consistency between replicas
//
// Several control-plane replicas may share one store. Every certificate
// request re-reads the mesh's CA record and the presented token's record
// from the store (one Get each, the parsed CA being reused while its
// revision is unchanged), so a revocation or a rotation step made on any
// replica holds for the next request on every replica, with no propagation
// delay beyond the store's own read consistency. The in-memory cache of CA
// states, fed by a store watch, serves Bundle, the expiry watch and
// Subscribe; it lags the store by the watch's delivery latency
// (milliseconds for bbolt and etcd).
//
// Issued-leaf records, from which a rotation's LeavesFromOld is counted,
// are in the store too (one per proxy, overwritten at each renewal, deleted
// once expired), so every replica counts every proxy's leaf. ProxiesBehind,
// however, comes from the xDS server of the replica that answers: it counts
// only the proxies connected to that replica (see Manager.Progress).
//
// # Concurrency
//
// A Manager is safe for concurrent use. Subscribe callbacks are called one
// at a time, from whichever goroutine first saw the change (the store
// watch, or a request that read the new state).
package meshca
