package natsfilter

import (
	"math/rand/v2"
	"strconv"

	"github.com/trellis-mesh/trellis/internal/messaging/nats"
)

// traceHeaderLen is the size of the header block appendTraced writes:
// "NATS/1.0\r\n" + "traceparent: " + 55-byte value + "\r\n" + "\r\n".
const traceHeaderLen = 10 + 13 + 55 + 2 + 2

// appendTraced appends the HPUB line and header block that replace the
// control line of PUB fr, carrying a new W3C traceparent (version 00, a
// random trace and parent id, sampled) so a trace can start at the publish
// and follow the message to its subscribers
// (https://www.w3.org/TR/trace-context/#traceparent-header). The PUB's
// payload follows unchanged.
func appendTraced(dst []byte, fr *nats.Frame) []byte {
	dst = append(dst, "HPUB "...)
	dst = append(dst, fr.Subject...)
	if len(fr.Reply) > 0 {
		dst = append(dst, ' ')
		dst = append(dst, fr.Reply...)
	}
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, traceHeaderLen, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(traceHeaderLen+fr.Size), 10)
	dst = append(dst, "\r\nNATS/1.0\r\ntraceparent: 00-"...)
	hi, lo := rand.Uint64(), rand.Uint64()
	if hi == 0 && lo == 0 {
		lo = 1 // an all-zero trace id is invalid
	}
	dst = appendHex(dst, hi)
	dst = appendHex(dst, lo)
	dst = append(dst, '-')
	dst = appendHex(dst, rand.Uint64()|1) // non-zero parent id
	return append(dst, "-01\r\n\r\n"...)
}

func appendHex(dst []byte, v uint64) []byte {
	const digits = "0123456789abcdef"
	for i := 60; i >= 0; i -= 4 {
		dst = append(dst, digits[(v>>uint(i))&0xf])
	}
	return dst
}
