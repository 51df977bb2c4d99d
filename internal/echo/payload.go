package echo

import (
	"errors"
	"io"
	"strconv"
	"strings"
)

// payloadPattern is the byte pattern every sized body repeats, so a client
// can check any byte at offset i against payloadPattern[i%64].
const payloadPattern = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// payloadBufSize is the length of the pre-built payload buffer. It is a
// multiple of len(payloadPattern) so consecutive slices continue the pattern.
const payloadBufSize = 64 << 10

// payloadBuf is read-only once built: writers receive sub-slices of it and
// the io.Writer contract forbids them to modify or retain it.
var payloadBuf = []byte(strings.Repeat(payloadPattern, payloadBufSize/len(payloadPattern)))

// maxSize bounds the size control (1 TiB): larger values are surely typos.
const maxSize = 1 << 40

// writePayload writes n bytes of the payload pattern, continuing it from
// offset off, to w without allocating.
func writePayload(w io.Writer, off, n int64) error {
	for n > 0 {
		start := off % int64(len(payloadPattern))
		k := min(n, int64(len(payloadBuf))-start)
		if _, err := w.Write(payloadBuf[start : start+k]); err != nil {
			return err
		}
		off += k
		n -= k
	}
	return nil
}

// payload returns n bytes of the payload pattern. For n up to the buffer
// size it is a shared read-only slice; callers must not modify it.
func payload(n int) []byte {
	if n <= len(payloadBuf) {
		return payloadBuf[:n]
	}
	b := make([]byte, n)
	for i := 0; i < n; i += len(payloadBuf) {
		copy(b[i:], payloadBuf)
	}
	return b
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30},
	{"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9},
}

var errSize = errors.New("want a byte count such as 1024, 64Ki, 10Mi or 1G, at most 1Ti")

// parseSize parses a non-negative byte count with an optional binary (Ki, Mi,
// Gi) or decimal (k, M, G) suffix.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range sizeUnits {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = rest, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > maxSize/mult {
		return 0, errSize
	}
	return n * mult, nil
}
