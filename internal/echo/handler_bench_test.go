package echo

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// discardWriter is a reusable ResponseWriter that keeps nothing, so a
// benchmark measures the handler rather than a recorder.
type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }

func newBenchServer(b *testing.B) *Server {
	s, err := New(Options{Name: testName, Version: testVersion})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkHandlerSized1KiB is the backend hot path: a 1 KiB sized
// response, through the handler alone.
func BenchmarkHandlerSized1KiB(b *testing.B) {
	s := newBenchServer(b)
	req := httptest.NewRequest(http.MethodGet, "/?size=1024", nil)
	w := &discardWriter{h: make(http.Header)}
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		s.ServeHTTP(w, req)
	}
	if w.code != http.StatusOK {
		b.Fatalf("status %d", w.code)
	}
}

// BenchmarkHandlerSized1KiBRecorder is the same through
// httptest.ResponseRecorder, whose own allocations are included.
func BenchmarkHandlerSized1KiBRecorder(b *testing.B) {
	s := newBenchServer(b)
	req := httptest.NewRequest(http.MethodGet, "/?size=1024", nil)
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Body.Len() != 1024 {
			b.Fatalf("body %d bytes", w.Body.Len())
		}
	}
}

// BenchmarkHandlerJSON is the default response, for comparison.
func BenchmarkHandlerJSON(b *testing.B) {
	s := newBenchServer(b)
	req := httptest.NewRequest(http.MethodGet, "/some/path?x=1", nil)
	req.Header.Set("User-Agent", "bench")
	w := &discardWriter{h: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		s.ServeHTTP(w, req)
	}
}

// BenchmarkLoopbackSized1KiB measures whole requests over loopback, client
// costs included, on one kept-alive connection per protocol.
func BenchmarkLoopbackSized1KiB(b *testing.B) {
	s, err := New(Options{HTTPAddr: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Shutdown(b.Context()) })
	for _, p := range []struct {
		name   string
		protos *http.Protocols
	}{
		{"http1", protocols(true, false, false)},
		{"h2c", protocols(false, false, true)},
	} {
		b.Run(p.name, func(b *testing.B) {
			tr := &http.Transport{Protocols: p.protos}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr}
			url := "http://" + s.Addr() + "/?size=1024"
			b.SetBytes(1024)
			b.ReportAllocs()
			for b.Loop() {
				resp, err := c.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
