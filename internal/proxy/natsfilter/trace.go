package natsfilter

import (
	"strconv"

	"github.com/trellis-mesh/trellis/internal/messaging/nats"
	"github.com/trellis-mesh/trellis/internal/telemetry/traceparent"
)

// traceHeaderLen is the size of the header block appendTraced writes:
// "NATS/1.0\r\n" + "traceparent: " + 55-byte value + "\r\n" + "\r\n".
const traceHeaderLen = 10 + 13 + traceparent.Len + 2 + 2

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
	dst = append(dst, "\r\nNATS/1.0\r\ntraceparent: "...)
	dst = traceparent.Append(dst, true)
	return append(dst, "\r\n\r\n"...)
}
