package kafkabroker

import (
	"encoding/binary"
	"log/slog"
	"net"
	"testing"

	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	kafkav3 "github.com/envoyproxy/go-control-plane/contrib/envoy/extensions/filters/network/kafka_broker/v3"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellis-mesh/trellis/internal/messaging/kafka"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
)

// benchConn is a filtered connection over a real loopback TCP connection
// whose far end discards everything.
func benchConn(b *testing.B, withPolicy bool) *conn {
	b.Helper()
	cfg, err := ParseBroker(&kafkav3.KafkaBroker{StatPrefix: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	if withPolicy {
		v, err := structpb.NewStruct(map[string]any{"default_action": "ALLOW", "rules": []any{
			map[string]any{"action": "DENY", "operations": []any{"produce"}, "topics": []any{"secret*"}, "principals": []any{"10.0.0.0/8"}},
		}})
		if err != nil {
			b.Fatal(err)
		}
		if err := cfg.ApplyPolicy(&xdstypev3.TypedStruct{TypeUrl: PolicyTypeURL, Value: v}); err != nil {
			b.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err == nil {
			buf := make([]byte, 64<<10)
			for {
				if _, err := c.Read(buf); err != nil {
					c.Close()
					return
				}
			}
		}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nc.Close() })
	return New(cfg, metrics.New()).Wrap(nc, slog.New(slog.DiscardHandler)).(*conn)
}

// produceFrame is a Produce request of 4 topics × 4 partitions, each one
// record batch header claiming 500 records followed by 64 KiB.
func produceFrame() []byte {
	r := kmsg.NewPtrProduceRequest()
	r.Version, r.Acks = 9, -1
	for _, name := range []string{"a", "b", "c", "d"} {
		t := kmsg.NewProduceRequestTopic()
		t.Topic = name
		for i := range 4 {
			p := kmsg.NewProduceRequestTopicPartition()
			p.Partition = int32(i)
			p.Records = make([]byte, 61+64<<10)
			binary.BigEndian.PutUint32(p.Records[8:], uint32(len(p.Records)-12))
			p.Records[16] = 2
			binary.BigEndian.PutUint32(p.Records[57:], 500)
			t.Partitions = append(t.Partitions, p)
		}
		r.Topics = append(r.Topics, t)
	}
	b := []byte{0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0}
	b = r.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// BenchmarkRequestResponse is the filter's work for one 1 MiB Produce
// request and its response, without the copying tcp_proxy does anyway.
func BenchmarkRequestResponse(b *testing.B) {
	for _, withPolicy := range []bool{false, true} {
		name := "no_policy"
		if withPolicy {
			name = "policy"
		}
		b.Run(name, func(b *testing.B) {
			c := benchConn(b, withPolicy)
			req := produceFrame()
			resp := kmsg.NewPtrProduceResponse()
			resp.Version = 9
			for _, name := range []string{"a", "b", "c", "d"} {
				t := kmsg.NewProduceResponseTopic()
				t.Topic = name
				for i := range 4 {
					p := kmsg.NewProduceResponseTopicPartition()
					p.Partition = int32(i)
					t.Partitions = append(t.Partitions, p)
				}
				resp.Topics = append(resp.Topics, t)
			}
			respFrame := kafka.AppendResponse(nil, 1, resp)
			b.SetBytes(int64(len(req)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.request(req); err != nil {
					b.Fatal(err)
				}
				c.mu.Lock()
				c.response(respFrame)
				c.mu.Unlock()
			}
		})
	}
}
