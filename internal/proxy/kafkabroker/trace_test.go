package kafkabroker

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strings"
	"testing"

	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellis-mesh/trellis/internal/messaging/kafka"
)

// batchOf is an uncompressed record batch of n records of 200-byte values
// with one header each, with a valid CRC-32C.
func batchOf(n int) []byte {
	var body []byte
	for i := range n {
		r := kmsg.Record{OffsetDelta: int32(i), Key: []byte(fmt.Sprint("key-", i)), Value: []byte(strings.Repeat("v", 200)),
			Headers: []kmsg.Header{{Key: "content-type", Value: []byte("application/json")}}}
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		body = r.AppendTo(body)
	}
	b := kmsg.RecordBatch{Magic: 2, LastOffsetDelta: int32(n - 1), ProducerID: -1, FirstSequence: -1,
		NumRecords: int32(n), Records: body, Length: int32(49 + len(body))}
	out := b.AppendTo(nil)
	binary.BigEndian.PutUint32(out[17:], crc32.Checksum(out[21:], crc32.MakeTable(crc32.Castagnoli)))
	return out
}

// BenchmarkTraceProduce is the filter's work, injection on, for a Produce
// request of one 100-record batch and its response: parse, rewrite the
// batch, re-encode the request, metrics.
func BenchmarkTraceProduce(b *testing.B) {
	c := benchConn(b, false)
	v, err := structpb.NewStruct(map[string]any{"inject_traceparent": true})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.f.cfg.ApplyTrace(&xdstypev3.TypedStruct{TypeUrl: TraceTypeURL, Value: v}); err != nil {
		b.Fatal(err)
	}
	r := kmsg.NewPtrProduceRequest()
	r.Version, r.Acks = 9, -1
	t := kmsg.NewProduceRequestTopic()
	t.Topic = "orders"
	p := kmsg.NewProduceRequestTopicPartition()
	p.Records = batchOf(100)
	t.Partitions = append(t.Partitions, p)
	r.Topics = append(r.Topics, t)
	req := append([]byte{0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0}, r.AppendTo(nil)...)
	binary.BigEndian.PutUint32(req, uint32(len(req)-4))
	resp := kmsg.NewPtrProduceResponse()
	resp.Version = 9
	respFrame := kafka.AppendResponse(nil, 1, resp)
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	for b.Loop() {
		out, err := c.request(req)
		if err != nil {
			b.Fatal(err)
		}
		if len(out) <= len(req) {
			b.Fatal("nothing injected")
		}
		c.mu.Lock()
		c.response(respFrame)
		c.mu.Unlock()
	}
}
