package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DefaultMaxFrameBytes bounds a frame (the size prefix excluded) when the
// configuration sets no limit: 100 MiB, Kafka's socket.request.max.bytes
// default and franz-go's BrokerMaxReadBytes default. A frame is buffered
// whole, so this is also the most memory one connection holds per direction.
const DefaultMaxFrameBytes = 100 << 20

// ErrFrameTooLarge is returned for a frame whose size prefix exceeds the
// limit; ErrMalformed for bytes that are not a Kafka message.
var (
	ErrFrameTooLarge = errors.New("kafka: frame too large")
	ErrMalformed     = errors.New("kafka: malformed message")
)

// minRequest is the smallest request: api key, version, correlation id and
// a client id length.
const minRequest = 10

// ReadFrame reads one frame from r into *buf (grown as needed) and returns
// it, size prefix included. A size above max is ErrFrameTooLarge, one
// below the smallest message ErrMalformed; io errors are returned as they
// are (io.EOF only when no byte of the frame was read).
func ReadFrame(r io.Reader, buf *[]byte, max int) ([]byte, error) {
	b := *buf
	if cap(b) < 4 {
		b = make([]byte, 4, 4096)
	}
	b = b[:4]
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	size := int64(int32(binary.BigEndian.Uint32(b)))
	switch {
	case size > int64(max):
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrFrameTooLarge, size, max)
	case size < 4:
		return nil, fmt.Errorf("%w: frame size %d", ErrMalformed, size)
	}
	n := 4 + int(size)
	if cap(b) < n {
		nb := make([]byte, n)
		copy(nb, b)
		b = nb
	}
	b = b[:n]
	*buf = b
	if _, err := io.ReadFull(r, b[4:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}

// FrameSize returns the size a frame starting at b announces (prefix
// excluded) and whether b holds the whole prefix.
func FrameSize(b []byte) (int, bool) {
	if len(b) < 4 {
		return 0, false
	}
	return int(int32(binary.BigEndian.Uint32(b))), true
}

// Header is a request header (v0, v1 or v2 as the request's version
// demands).
type Header struct {
	Key         int16
	Version     int16
	Correlation int32
	// ClientID aliases the frame it was parsed from; nil when null.
	ClientID []byte
	// Flexible reports a flexible-version request (header v2, with tagged
	// fields).
	Flexible bool
	// Known reports whether kmsg knows this key at this version; the body
	// of an unknown request is not parsed and the header's tagged fields
	// (if any) are not skipped.
	Known bool
	// Len is the header's length: the body starts at frame[4+Len].
	Len int
}

// ParseRequestHeader parses the header of a request frame (size prefix
// included).
func ParseRequestHeader(frame []byte) (Header, error) {
	m := frame[4:]
	if len(m) < minRequest {
		return Header{}, fmt.Errorf("%w: request of %d bytes", ErrMalformed, len(m))
	}
	h := Header{
		Key:         int16(binary.BigEndian.Uint16(m)),
		Version:     int16(binary.BigEndian.Uint16(m[2:])),
		Correlation: int32(binary.BigEndian.Uint32(m[4:])),
	}
	if h.Key < 0 || h.Version < 0 {
		return Header{}, fmt.Errorf("%w: api key %d version %d", ErrMalformed, h.Key, h.Version)
	}
	l := int(int16(binary.BigEndian.Uint16(m[8:])))
	off := minRequest
	if l >= 0 {
		if off+l > len(m) {
			return Header{}, fmt.Errorf("%w: client id overruns the request", ErrMalformed)
		}
		h.ClientID = m[off : off+l : off+l]
		off += l
	}
	if req := kmsg.RequestForKey(h.Key); req != nil && h.Version <= req.MaxVersion() {
		h.Known = true
		req.SetVersion(h.Version)
		h.Flexible = req.IsFlexible()
	}
	if h.Flexible {
		n, err := skipTags(m[off:])
		if err != nil {
			return Header{}, err
		}
		off += n
	}
	h.Len = off
	return h, nil
}

// skipTags skips a tagged-field section and returns its length.
func skipTags(b []byte) (int, error) {
	n, off, err := uvarint(b, 0)
	if err != nil {
		return 0, err
	}
	for i := uint64(0); i < n; i++ {
		if _, off, err = uvarint(b, off); err != nil { // tag
			return 0, err
		}
		var size uint64
		if size, off, err = uvarint(b, off); err != nil {
			return 0, err
		}
		if size > uint64(len(b)-off) {
			return 0, fmt.Errorf("%w: tagged field overruns the message", ErrMalformed)
		}
		off += int(size)
	}
	return off, nil
}

func uvarint(b []byte, off int) (uint64, int, error) {
	v, n := binary.Uvarint(b[off:])
	if n <= 0 {
		return 0, 0, fmt.Errorf("%w: bad varint", ErrMalformed)
	}
	return v, off + n, nil
}

// responseHeaderLen returns the length of a response header for a request
// of key at a version with the given flexibility: the correlation id, and
// for flexible versions (except ApiVersions, whose response header is
// always v0) a tagged-field section.
func responseHeaderLen(key int16, flexible bool, m []byte) (int, error) {
	if len(m) < 4 {
		return 0, fmt.Errorf("%w: response of %d bytes", ErrMalformed, len(m))
	}
	if !flexible || key == apiVersionsKey {
		return 4, nil
	}
	n, err := skipTags(m[4:])
	if err != nil {
		return 0, err
	}
	return 4 + n, nil
}

// Correlation returns the correlation id of a response frame (prefix
// included); ok is false when the frame is too short.
func Correlation(frame []byte) (int32, bool) {
	if len(frame) < 8 {
		return 0, false
	}
	return int32(binary.BigEndian.Uint32(frame[4:])), true
}

// AppendResponse appends a response frame for correlation id corr.
func AppendResponse(dst []byte, corr int32, resp kmsg.Response) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(dst[start+4:], uint32(corr))
	if resp.IsFlexible() && resp.Key() != apiVersionsKey {
		dst = append(dst, 0)
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// AppendRequest appends a request frame made of the header of frame (a
// request frame with header h) and the encoding of req.
func AppendRequest(dst []byte, frame []byte, h Header, req kmsg.Request) []byte {
	start := len(dst)
	dst = append(dst, frame[:4+h.Len]...)
	dst = req.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}
