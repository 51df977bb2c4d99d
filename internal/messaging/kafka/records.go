package kafka

import "encoding/binary"

// Offsets in a record batch (magic 2) and in a legacy message (magic 0/1).
const (
	batchLengthOff  = 8  // after baseOffset
	batchMagicOff   = 16 // after partitionLeaderEpoch
	batchCountOff   = 57 // recordsCount, after baseSequence
	batchHeaderSize = 61
	logOverhead     = 12 // offset + length before every batch or message
)

// CountRecords returns the number of records in a partition's records
// field: the sum of the record counts of its record batches (magic 2), or
// the number of messages of a legacy message set (magic 0 and 1, where a
// compressed wrapper counts as one). It reads only headers and never
// decompresses. A truncated trailing batch (brokers may cut a Fetch
// response mid-batch) is not counted.
func CountRecords(b []byte) int64 {
	var n int64
	for len(b) >= logOverhead {
		size := int64(int32(binary.BigEndian.Uint32(b[batchLengthOff:])))
		if size < 0 || size > int64(len(b)-logOverhead) {
			break
		}
		if len(b) > batchMagicOff && b[batchMagicOff] >= 2 {
			if size+logOverhead < batchHeaderSize {
				break
			}
			if c := int32(binary.BigEndian.Uint32(b[batchCountOff:])); c > 0 {
				n += int64(c)
			}
		} else {
			n++
		}
		b = b[logOverhead+size:]
	}
	return n
}
