// Package traceparent makes W3C trace-context headers for the protocol
// filters that start a trace on a message they forward (Kafka record
// headers, NATS HPUB headers): no tracer, no allocation.
package traceparent

import "math/rand/v2"

// Len is the length of a version-00 traceparent value:
// "00-" + 32 hex trace id + "-" + 16 hex parent id + "-" + 2 hex flags.
const Len = 55

// Append appends a new version-00 traceparent value with a random,
// non-zero trace id and parent id, flagged sampled or not
// (https://www.w3.org/TR/trace-context/#traceparent-header).
func Append(dst []byte, sampled bool) []byte {
	dst = append(dst, "00-"...)
	hi, lo := rand.Uint64(), rand.Uint64()
	if hi == 0 && lo == 0 {
		lo = 1 // an all-zero trace id is invalid
	}
	dst = appendHex(dst, hi)
	dst = appendHex(dst, lo)
	dst = append(dst, '-')
	dst = appendHex(dst, rand.Uint64()|1) // an all-zero parent id is invalid
	if sampled {
		return append(dst, "-01"...)
	}
	return append(dst, "-00"...)
}

func appendHex(dst []byte, v uint64) []byte {
	const digits = "0123456789abcdef"
	for i := 60; i >= 0; i -= 4 {
		dst = append(dst, digits[(v>>uint(i))&0xf])
	}
	return dst
}
