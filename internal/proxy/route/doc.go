// Package route compiles an Envoy RouteConfiguration into an immutable route
// table and matches requests against it: virtual hosts by domain (exact,
// suffix wildcard, prefix wildcard, "*"), then the first route whose match
// holds (path, headers, query parameters, gRPC), with its action (forward to
// a cluster, redirect, direct response) and header mutations at route,
// virtual-host and route-configuration level.
//
// A Table is built once per configuration snapshot and is safe for
// concurrent use; matching does not allocate.
package route
