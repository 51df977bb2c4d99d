package tlsx

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/fuzz/FuzzPeekClientHello seeds from live crypto/tls ClientHellos")

// FuzzPeekClientHello checks that PeekClientHello never panics, replays
// exactly what it read, fails only with its documented errors, and gives
// the same answer however the input is split into reads.
func FuzzPeekClientHello(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
	f.Add([]byte{0x16, 3, 1, 0, 0})
	f.Add([]byte{0x16, 3, 1, 0, 4, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		whole, replay, err := PeekClientHello(newMemConn(data, 0))
		bytewise, _, errBytewise := PeekClientHello(newMemConn(data, 1))
		if (err == nil) != (errBytewise == nil) || !cmp.Equal(whole, bytewise) {
			t.Fatalf("read in one go: %+v, %v; byte by byte: %+v, %v", whole, err, bytewise, errBytewise)
		}
		if err != nil && !errors.Is(err, ErrMalformedClientHello) && !errors.Is(err, ErrClientHelloTooLarge) &&
			err != io.EOF && err != io.ErrUnexpectedEOF {
			t.Fatalf("undocumented error %v", err)
		}
		if len(data) > 0 && whole.IsTLS != (data[0] == recordTypeHandshake) {
			t.Fatalf("IsTLS = %v for first byte %#x", whole.IsTLS, data[0])
		}
		got, _ := io.ReadAll(replay)
		if !bytes.Equal(got, data) {
			t.Fatalf("replay yielded %d bytes, want the %d sent", len(got), len(data))
		}
	})
}

// TestWriteFuzzSeeds regenerates the seed corpus with -update: real
// ClientHellos from crypto/tls, whole and split across records.
func TestWriteFuzzSeeds(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite the seeds")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzPeekClientHello")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, cc := range clientConfigs {
		record := captureClientHello(t, cc.cfg)
		write("go-"+cc.name, record)
		write("go-"+cc.name+"-records-of-64", refragment(record, 64))
	}
	write("http1-request", []byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"))
}
