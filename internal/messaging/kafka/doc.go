// Package kafka reads the Kafka wire protocol as a proxy needs it: frames
// (a 4-byte big-endian size, then the message), request and response
// headers (flexible versions included), and for Produce, Fetch, Metadata,
// FindCoordinator, DescribeCluster and ApiVersions the parts a mesh acts on:
// topics, partitions, record counts and bytes, error codes and advertised
// broker addresses. It also writes what a proxy answers or changes: broker
// address rewrites, capped ApiVersions, per-topic authorization failures.
//
// Message bodies are decoded and encoded with
// github.com/twmb/franz-go/pkg/kmsg, which knows every version; this
// package adds the framing, the header, the cheap record counting (from
// record batch headers, never decompressing) and the topic policy.
//
// Nothing here does I/O on its own except ReadFrame; the proxy glue lives
// in internal/proxy/kafkabroker.
package kafka
