package nats

import (
	"strings"
	"testing"
)

func benchParse(b *testing.B, dir Direction, frame []byte) {
	p := &Parser{Dir: dir}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		buf := frame
		for len(buf) > 0 {
			n, _, err := p.Next(buf)
			if err != nil || n == 0 {
				b.Fatalf("n %d err %v", n, err)
			}
			buf = buf[n:]
		}
	}
}

// BenchmarkParsePub parses a PUB with a 128-byte payload.
func BenchmarkParsePub(b *testing.B) {
	benchParse(b, ClientToServer, []byte("PUB orders.eu.created _INBOX.abc 128\r\n"+strings.Repeat("x", 128)+"\r\n"))
}

// BenchmarkParseMsg parses a MSG with a 128-byte payload.
func BenchmarkParseMsg(b *testing.B) {
	benchParse(b, ServerToClient, []byte("MSG orders.eu.created 17 _INBOX.abc 128\r\n"+strings.Repeat("x", 128)+"\r\n"))
}
