package kafka

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/trellis-mesh/trellis/internal/telemetry/traceparent"
)

// TraceHeader is the record header the proxy injects: W3C Trace Context's
// traceparent (https://www.w3.org/TR/trace-context/#traceparent-header),
// as OpenTelemetry's Kafka instrumentations read and write it.
const TraceHeader = "traceparent"

// traceValueLen is the length of a version-00 traceparent value.
const traceValueLen = traceparent.Len

// traceHeaderLen is what one injected header adds to a record: the key's
// varint length (1 byte), the key, the value's varint length (1 byte) and
// the value.
const traceHeaderLen = 1 + len(TraceHeader) + 1 + traceValueLen

// minRecordLen is the smallest encoded record: one byte each for the
// length, attributes, timestamp delta, offset delta, key length, value
// length and header count.
const minRecordLen = 7

// Offsets in a record batch (magic 2) after the ones records.go uses.
const (
	batchCRCOff   = 17 // crc: CRC-32C of everything from attributes on
	batchAttrsOff = 21
)

// Batch attributes the injection reads.
const (
	attrCompression = 0x07
	attrControl     = 0x20
)

var (
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	traceKey   = []byte(TraceHeader)
)

// SkipReason says why a record was given no traceparent.
type SkipReason uint8

// Reasons a record is left as it is. Each has a stable name (String), the
// reason label of trellis_kafka_trace_skipped_total.
const (
	// SkipPresent: the record already has a traceparent header; it is
	// kept.
	SkipPresent SkipReason = iota
	// SkipCompressed: the record is in a compressed batch (attributes &
	// 0x7 != 0). Rewriting it would mean decompressing and recompressing.
	SkipCompressed
	// SkipControl: the record is in a control batch (transaction
	// markers), which carries no application data.
	SkipControl
	// SkipLegacy: the record is a message of the legacy format (magic 0
	// or 1), which has no headers.
	SkipLegacy
	// SkipVersion: the Produce request's version is below 3 (legacy
	// message sets) or unknown to the proxy.
	SkipVersion
	// SkipMalformed: the partition's records do not parse as record
	// batches, or a batch to rewrite fails its CRC-32C check; they are
	// forwarded as they are for the broker to refuse.
	SkipMalformed
	numSkipReasons
)

var skipNames = [...]string{
	SkipPresent: "present", SkipCompressed: "compressed", SkipControl: "control",
	SkipLegacy: "legacy_format", SkipVersion: "version", SkipMalformed: "malformed",
}

func (r SkipReason) String() string { return skipNames[r] }

// TraceStats counts records by what the injection did to them.
type TraceStats struct {
	Injected int64
	Skipped  [numSkipReasons]int64
}

func (s *TraceStats) add(o *TraceStats) {
	s.Injected += o.Injected
	for i, n := range o.Skipped {
		s.Skipped[i] += n
	}
}

// Tracer injects traceparent headers into produced records. The zero value
// flags no trace as sampled; it is immutable and safe for concurrent use.
type Tracer struct {
	// Sampling is the percentage (0 to 100) of injected traceparents
	// whose sampled flag is set.
	Sampling float64
}

// InjectProduce gives every record of m (a Produce request of version
// version) that has no traceparent header a new one, re-encoding each
// record batch it changes (record lengths, header counts, batch length,
// CRC-32C) in place of the partition's records. It reports whether m
// changed (then re-encode it with AppendRequest) and counts into st.
//
// Batches that are compressed, control batches and legacy messages are
// left as they are; so are all of a partition's records when any of its
// batches does not parse. The producer id, epoch and sequence numbers of
// idempotent and transactional batches stay valid: the records and their
// count do not change, only their headers.
func (t *Tracer) InjectProduce(m *kmsg.ProduceRequest, version int16, st *TraceStats) bool {
	if version < 3 {
		for i := range m.Topics {
			for j := range m.Topics[i].Partitions {
				st.Skipped[SkipVersion] += CountRecords(m.Topics[i].Partitions[j].Records)
			}
		}
		return false
	}
	// One buffer for every rewritten partition: their bytes plus a
	// header per record.
	size := 0
	for i := range m.Topics {
		for j := range m.Topics[i].Partitions {
			rec := m.Topics[i].Partitions[j].Records
			size += len(rec) + int(boundedCount(rec))*(traceHeaderLen+2)
		}
	}
	var buf []byte
	changed := false
	for i := range m.Topics {
		for j := range m.Topics[i].Partitions {
			p := &m.Topics[i].Partitions[j]
			if buf == nil {
				buf = make([]byte, 0, size)
			}
			start := len(buf)
			out, ok := t.AppendRecords(buf, p.Records, st)
			if !ok {
				continue
			}
			// An append past the capacity moved buf: earlier
			// partitions keep the old array, which stays valid.
			buf = out
			p.Records = buf[start:len(buf):len(buf)]
			changed = true
		}
	}
	return changed
}

// AppendRecords appends to dst the records field of one partition of a
// Produce request (record batches) with a traceparent header added to
// every record that has none, and reports whether it did: when nothing
// needs a header, or any batch does not parse, it returns dst unchanged
// and false (the caller forwards records as they are). Counts go to st.
func (t *Tracer) AppendRecords(dst, records []byte, st *TraceStats) ([]byte, bool) {
	var local TraceStats
	start := len(dst)
	changed := false
	for b := records; len(b) > 0; {
		size, ok := batchSize(b)
		if !ok {
			st.Skipped[SkipMalformed] += boundedCount(records)
			return dst[:start], false
		}
		var did bool
		dst, did, ok = t.appendBatch(dst, b[:size], &local)
		if !ok {
			st.Skipped[SkipMalformed] += boundedCount(records)
			return dst[:start], false
		}
		changed = changed || did
		b = b[size:]
	}
	st.add(&local)
	if !changed {
		return dst[:start], false
	}
	return dst, true
}

// boundedCount is CountRecords(b), but no more records than b can hold:
// batch headers may claim any count.
func boundedCount(b []byte) int64 {
	return min(CountRecords(b), int64(len(b)/minRecordLen))
}

// batchSize returns the size of the batch or legacy message at the head of
// b (log overhead included), false when b does not hold it whole.
func batchSize(b []byte) (int, bool) {
	if len(b) < logOverhead {
		return 0, false
	}
	size := int64(int32(binary.BigEndian.Uint32(b[batchLengthOff:])))
	if size < 0 || size > int64(len(b)-logOverhead) {
		return 0, false
	}
	return logOverhead + int(size), true
}

// appendBatch appends batch b (whole, log overhead included) to dst,
// rewritten when a record needs a header. did reports a rewrite; ok is
// false when b does not parse (dst is then garbage past its old length).
func (t *Tracer) appendBatch(dst, b []byte, st *TraceStats) (_ []byte, did, ok bool) {
	if len(b) <= batchMagicOff || b[batchMagicOff] < 2 {
		st.Skipped[SkipLegacy]++
		return append(dst, b...), false, true
	}
	if len(b) < batchHeaderSize || b[batchMagicOff] != 2 {
		return dst, false, false
	}
	count := int32(binary.BigEndian.Uint32(b[batchCountOff:]))
	if count < 0 {
		return dst, false, false
	}
	attrs := binary.BigEndian.Uint16(b[batchAttrsOff:])
	switch {
	case attrs&attrCompression != 0:
		st.Skipped[SkipCompressed] += int64(count)
		return append(dst, b...), false, true
	case attrs&attrControl != 0:
		st.Skipped[SkipControl] += int64(count)
		return append(dst, b...), false, true
	}
	// First pass: check every record parses and find those to change.
	need := int64(0)
	off := batchHeaderSize
	for range count {
		r, ok := parseRecord(b, off)
		if !ok {
			return dst, false, false
		}
		if !r.traced {
			need++
		}
		off = r.end
	}
	if off != len(b) {
		return dst, false, false
	}
	st.Skipped[SkipPresent] += int64(count) - need
	if need == 0 {
		return append(dst, b...), false, true
	}
	// A batch whose checksum is wrong is corrupt: a new checksum would
	// hide that from the broker.
	if crc32.Checksum(b[batchAttrsOff:], castagnoli) != binary.BigEndian.Uint32(b[batchCRCOff:]) {
		return dst, false, false
	}
	bs := len(dst)
	dst = append(dst, b[:batchHeaderSize]...)
	off = batchHeaderSize
	for range count {
		r, _ := parseRecord(b, off)
		if r.traced {
			dst = append(dst, b[off:r.end]...)
			off = r.end
			continue
		}
		hdrs := r.hdrCount + 1
		body := r.end - r.bodyOff + traceHeaderLen - (r.hdrsOff - r.hdrCountOff) + varintLen(hdrs)
		dst = kbin.AppendVarint(dst, int32(body))
		dst = append(dst, b[r.bodyOff:r.hdrCountOff]...)
		dst = kbin.AppendVarint(dst, hdrs)
		dst = append(dst, b[r.hdrsOff:r.end]...)
		dst = t.appendHeader(dst)
		off = r.end
	}
	binary.BigEndian.PutUint32(dst[bs+batchLengthOff:], uint32(len(dst)-bs-logOverhead))
	binary.BigEndian.PutUint32(dst[bs+batchCRCOff:], crc32.Checksum(dst[bs+batchAttrsOff:], castagnoli))
	st.Injected += need
	return dst, true, true
}

// record locates the parts of one record in its batch.
type record struct {
	bodyOff     int // after the length varint
	hdrCountOff int // the header count varint
	hdrsOff     int // after it
	end         int
	hdrCount    int32
	traced      bool // it has a traceparent header
}

// parseRecord parses the record at b[off:] with kmsg's varint decoders
// (so that whatever it accepts, kmsg.Record reads back).
func parseRecord(b []byte, off int) (r record, ok bool) {
	l, n := kbin.Varint(b[off:])
	if n <= 0 || l < 0 || int(l) > len(b)-off-n {
		return r, false
	}
	r.bodyOff = off + n
	r.end = r.bodyOff + int(l)
	rec := b[:r.end]
	p := r.bodyOff + 1 // attributes
	if p > len(rec) {
		return r, false
	}
	if _, n = kbin.Varlong(rec[p:]); n <= 0 { // timestamp delta
		return r, false
	}
	p += n
	if _, n = kbin.Varint(rec[p:]); n <= 0 { // offset delta
		return r, false
	}
	p += n
	for range 2 { // key, value
		if p, ok = skipVarintBytes(rec, p, -1); !ok {
			return r, false
		}
	}
	r.hdrCountOff = p
	hc, n := kbin.Varint(rec[p:])
	if n <= 0 || hc < 0 || int(hc) > len(rec)-p-n {
		return r, false
	}
	p += n
	r.hdrsOff, r.hdrCount = p, hc
	for range hc {
		kl, n := kbin.Varint(rec[p:])
		if n <= 0 || kl < 0 || int(kl) > len(rec)-p-n {
			return r, false
		}
		key := rec[p+n : p+n+int(kl)]
		if bytes.EqualFold(key, traceKey) {
			r.traced = true
		}
		p += n + int(kl)
		if p, ok = skipVarintBytes(rec, p, -1); !ok {
			return r, false
		}
	}
	return r, p == r.end
}

// skipVarintBytes skips a varint-length byte string at b[p:] whose length
// may be as low as min (-1: null).
func skipVarintBytes(b []byte, p int, min int32) (int, bool) {
	l, n := kbin.Varint(b[p:])
	if n <= 0 || l < min {
		return 0, false
	}
	p += n
	if l > 0 {
		if int(l) > len(b)-p {
			return 0, false
		}
		p += int(l)
	}
	return p, true
}

func varintLen(v int32) int {
	var b [5]byte
	return len(kbin.AppendVarint(b[:0], v))
}

// appendHeader appends a traceparent header with a new trace id and parent
// id, sampled per t.Sampling.
func (t *Tracer) appendHeader(dst []byte) []byte {
	dst = kbin.AppendVarint(dst, int32(len(TraceHeader)))
	dst = append(dst, TraceHeader...)
	dst = kbin.AppendVarint(dst, traceValueLen)
	return traceparent.Append(dst, t.Sampling >= 100 || (t.Sampling > 0 && rand.Float64()*100 < t.Sampling))
}
