package tlsx

import (
	"testing"
)

func BenchmarkPeekClientHello(b *testing.B) {
	record := captureClientHello(b, clientConfigs[0].cfg) // SNI, ALPN h2 and http/1.1
	c := newMemConn(record, 0)
	b.SetBytes(int64(len(record)))
	b.ReportAllocs()
	for b.Loop() {
		c.r.Reset(record)
		hello, _, err := PeekClientHello(c)
		if err != nil || hello.ServerName == "" {
			b.Fatal(hello, err)
		}
	}
}
