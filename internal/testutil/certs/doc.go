// Package certs issues throwaway X.509 certificates for tests: an ECDSA P-256
// CA, optional intermediates, and leaves with chosen DNS, URI, IP and email
// SANs. Every PEM is also written under t.TempDir(), so tests can point
// Envoy DataSource filenames at it.
//
// Helpers fail the test through testing.TB on any error and never return one.
// A CA is safe for concurrent use once created; each call of Issue writes to a
// fresh temporary directory.
package certs
