package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// bigProduce is a 1 MiB-ish Produce request: 4 topics × 4 partitions, each
// one 64 KiB record batch of 500 records.
func bigProduce(version int16) []byte {
	parts := [][]byte{}
	for range 4 {
		parts = append(parts, batch(500, 64<<10))
	}
	return requestFrame(produceRequest(version, map[string][][]byte{"a": parts, "b": parts, "c": parts, "secret": parts}), 1, "bench")
}

// skimProduce is the alternative to kmsg: read only topic names and record
// fields of a Produce body, allocating nothing but the result.
func skimProduce(body []byte, flexible bool, out []TopicData) []TopicData {
	r := kbin.Reader{Src: body}
	arr := func() int32 {
		if flexible {
			return int32(r.Uvarint()) - 1
		}
		return r.Int32()
	}
	if flexible {
		r.CompactNullableString()
	} else {
		r.NullableString()
	}
	r.Int16()
	r.Int32()
	for range max(arr(), 0) {
		var d TopicData
		if flexible {
			d.Topic = r.UnsafeCompactString()
		} else {
			d.Topic = r.UnsafeString()
		}
		n := max(arr(), 0)
		d.Partitions = int(n)
		for range n {
			r.Int32()
			var rec []byte
			if flexible {
				rec = r.CompactNullableBytes()
			} else {
				rec = r.NullableBytes()
			}
			d.Bytes += int64(len(rec))
			d.Records += CountRecords(rec)
			if flexible {
				kmsg.SkipTags(&r)
			}
		}
		if flexible {
			kmsg.SkipTags(&r)
		}
		out = append(out, d)
		if !r.Ok() {
			break
		}
	}
	return out
}

func BenchmarkParseProduceKmsg(b *testing.B) {
	frame := bigProduce(9)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRequest(frame); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseProduceSkim(b *testing.B) {
	frame := bigProduce(9)
	h, err := ParseRequestHeader(frame)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	var out []TopicData
	for b.Loop() {
		out = skimProduce(frame[4+h.Len:], true, out[:0])
	}
	if len(out) != 4 || out[0].Records != 2000 {
		b.Fatalf("skim got %+v", out)
	}
}

func BenchmarkParseFetchResponse(b *testing.B) {
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = 12
	for _, name := range []string{"a", "b", "c", "d"} {
		t := kmsg.NewFetchResponseTopic()
		t.Topic = name
		for range 4 {
			p := kmsg.NewFetchResponseTopicPartition()
			p.RecordBatches = batch(500, 64<<10)
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
	frame := AppendResponse(nil, 1, resp)
	p := &Pending{Key: 1, Version: 12, Flexible: true}
	rw := &Rewrite{}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseResponse(frame, p, rw); err != nil {
			b.Fatal(err)
		}
	}
}
