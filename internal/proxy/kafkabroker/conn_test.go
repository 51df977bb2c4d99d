package kafkabroker

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	kafkav3 "github.com/envoyproxy/go-control-plane/contrib/envoy/extensions/filters/network/kafka_broker/v3"

	"github.com/trellis-mesh/trellis/internal/messaging/kafka"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-ch
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// FuzzResponseChunks: responses written in pieces of any size reach the
// client whole and unchanged, in order, whatever the split.
func FuzzResponseChunks(f *testing.F) {
	f.Add([]byte{1, 2, 3, 200, 7})
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, splits []byte) {
		cfg, err := ParseBroker(&kafkav3.KafkaBroker{StatPrefix: "fuzz"})
		if err != nil {
			t.Fatal(err)
		}
		down, client := tcpPair(t)
		c := New(cfg, metrics.New()).Wrap(down, slog.New(slog.DiscardHandler)).(*conn)
		var stream []byte
		for i := range 5 {
			body := bytes.Repeat([]byte{byte(i)}, 10*i)
			frame := binary.BigEndian.AppendUint32(nil, uint32(4+len(body)))
			frame = binary.BigEndian.AppendUint32(frame, uint32(i))
			stream = append(stream, append(frame, body...)...)
			// An API key the filter does not inspect: passed as it is.
			c.inflight = append(c.inflight, &entry{corr: int32(i), p: kafka.Pending{Key: 42}})
		}
		got := make(chan []byte, 1)
		go func() {
			client.SetReadDeadline(time.Now().Add(5 * time.Second))
			b, _ := io.ReadAll(io.LimitReader(client, int64(len(stream))))
			got <- b
		}()
		rest := stream
		for _, s := range splits {
			if len(rest) == 0 {
				break
			}
			n := min(int(s)%17+1, len(rest))
			if _, err := c.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		if len(rest) > 0 {
			if _, err := c.Write(rest); err != nil {
				t.Fatal(err)
			}
		}
		if b := <-got; !bytes.Equal(b, stream) {
			t.Fatalf("client read %d bytes, want the %d written", len(b), len(stream))
		}
		if len(c.inflight) != 0 {
			t.Fatalf("%d requests still await a response", len(c.inflight))
		}
	})
}

// TestLocalAnswerWaitsItsTurn: the proxy's own answer to a request goes
// out after the broker's responses to the requests before it (Kafka
// clients expect responses in request order).
func TestLocalAnswerWaitsItsTurn(t *testing.T) {
	cfg, err := ParseBroker(&kafkav3.KafkaBroker{StatPrefix: "order"})
	if err != nil {
		t.Fatal(err)
	}
	down, client := tcpPair(t)
	c := New(cfg, metrics.New()).Wrap(down, slog.New(slog.DiscardHandler)).(*conn)
	c.inflight = append(c.inflight, &entry{corr: 1, p: kafka.Pending{Key: 42}})
	denied := []kafka.DeniedTopic{{Topic: "secret", Partitions: []int32{0}}}
	if err := c.answer(&entry{corr: 2, p: kafka.Pending{Key: 0, Version: 9, Denied: denied}}, kafka.DeniedProduceResponse(9, denied)); err != nil {
		t.Fatal(err)
	}
	if len(c.inflight) != 2 {
		t.Fatalf("the local answer was not queued behind the pending response (%d queued)", len(c.inflight))
	}
	upstream := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 4), 1)
	if _, err := c.Write(upstream); err != nil {
		t.Fatal(err)
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	var buf []byte
	for _, want := range []int32{1, 2} {
		frame, err := kafka.ReadFrame(client, &buf, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if corr, _ := kafka.Correlation(frame); corr != want {
			t.Fatalf("response %d arrived, want %d", corr, want)
		}
	}
}
