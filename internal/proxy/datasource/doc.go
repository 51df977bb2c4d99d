// Package datasource reads Envoy's config.core.v3.DataSource: the bytes of a
// certificate, key or other blob given as a file name, inline bytes, an inline
// string or an environment variable.
//
// It sits under the proxy's config decoders (TLS contexts, Lua sources, local
// replies): they call Read once while building a snapshot, never per request.
// Read has no state and is safe for concurrent use. A file is read each time
// Read is called; watching for rotation (DataSource.watched_directory) is not
// done here.
package datasource
