// Package rbac is the policy engine shared by Envoy's RBAC filters: it
// compiles an envoy.config.rbac.v3.RBAC (action and named policies of
// permissions and principals) into an immutable Engine and evaluates it
// against the facts of one request or connection (Input).
//
// The HTTP filter (internal/proxy/httpfilter/rbac) and the network filter
// (internal/proxy/netrbac) build on it. An Engine is built once per
// configuration snapshot and is safe for concurrent use; Evaluate does not
// allocate for policies made of ports, addresses, server names, string
// matchers on the path and single-valued headers.
//
// Semantics follow Envoy's (source/extensions/filters/common/rbac): a
// policy matches when any of its permissions and any of its principals
// match; policies are tried in name order, so the matched policy reported
// is the first by name.
package rbac
