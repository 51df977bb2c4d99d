// Package echo is Trellis' built-in test workload: a small, fast server that
// answers every request with a description of it, or with whatever the
// request asks for through its controls (status, size, delay, injected
// failures and resets, streamed bodies, trailers, chunked output).
//
// It sits at the very end of the data flow, as the backend behind Trellis
// proxies in the examples, the end-to-end tests, the demo and the
// benchmarks. One HTTP port serves HTTP/1.1, HTTP/2 with prior knowledge
// (h2c), gRPC (grpc.testing.TestService and grpc.health.v1.Health) and, with
// TLS, h2 and http/1.1 via ALPN. Upgrade requests on HTTP/1.1 become a
// WebSocket echo (/ws) or a raw byte tunnel, and an optional second listener
// echoes raw TCP.
//
// Concurrency: a Server is safe for concurrent use once built; Start and
// Shutdown are each meant to be called once, from one goroutine. The hot path
// (a sized response) writes slices of one read-only, pre-built payload and
// allocates nothing per byte.
//
// Security: every client controls how the server answers, including delays
// and multi-gigabyte responses. The server is meant for tests and demos and
// must not be exposed to untrusted networks.
package echo
