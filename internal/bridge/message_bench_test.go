package bridge

import (
	"bytes"
	"context"
	"net/http"
	"testing"
)

// BenchmarkReadEventBinary is the publish path's parsing of a binary-mode
// CloudEvent.
func BenchmarkReadEventBinary(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 256)
	r, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/publish/k/t", nil)
	r.Header = binaryHeaders("id-1", "order.created", "customer-7")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := readEvent(context.Background(), r, body, "src"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadEventRaw wraps a raw body.
func BenchmarkReadEventRaw(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 256)
	r, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/publish/k/t", nil)
	r.Header.Set("Content-Type", "application/octet-stream")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := readEvent(context.Background(), r, body, "src"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDeliveryRequest builds one delivery POST.
func BenchmarkDeliveryRequest(b *testing.B) {
	m := &Message{Attrs: map[string]string{"specversion": "1.0", "id": "orders/0/1", "source": "/s", "type": "t",
		"datacontenttype": "text/plain", "partitionkey": "k"}, Data: bytes.Repeat([]byte("x"), 256)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.httpRequest(context.Background(), "http://127.0.0.1:8080/events", 1); err != nil {
			b.Fatal(err)
		}
	}
}
