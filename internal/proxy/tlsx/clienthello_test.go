package tlsx

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trellis-mesh/trellis/internal/testutil/certs"
)

// clientConfigs are the crypto/tls clients whose ClientHellos the tests peek.
var clientConfigs = []struct {
	name string
	cfg  *tls.Config
	want ClientHello
}{
	{
		name: "tls13-sni-alpn",
		cfg:  &tls.Config{ServerName: "backend.example.com", NextProtos: []string{"h2", "http/1.1"}},
		want: ClientHello{IsTLS: true, ServerName: "backend.example.com", ALPN: []string{"h2", "http/1.1"}},
	},
	{
		name: "tls12-sni",
		cfg:  &tls.Config{ServerName: "Mixed.Case.example.com", MaxVersion: tls.VersionTLS12},
		want: ClientHello{IsTLS: true, ServerName: "Mixed.Case.example.com"},
	},
	{
		name: "no-sni-custom-alpn",
		cfg:  &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"istio-peer-exchange", "istio"}},
		want: ClientHello{IsTLS: true, ALPN: []string{"istio-peer-exchange", "istio"}},
	},
}

func TestPeekClientHello(t *testing.T) {
	for _, cc := range clientConfigs {
		record := captureClientHello(t, cc.cfg)
		inputs := []struct {
			name  string
			data  []byte
			chunk int
		}{
			{name: "one read", data: record},
			{name: "one byte per read", data: record, chunk: 1},
			{name: "7-byte records", data: refragment(record, 7), chunk: 100},
			{name: "1-byte records", data: refragment(record, 1)},
			{name: "trailing data", data: append(bytes.Clone(record), "early data"...)},
		}
		for _, in := range inputs {
			t.Run(cc.name+"/"+in.name, func(t *testing.T) {
				hello, replay, err := PeekClientHello(newMemConn(in.data, in.chunk))
				if err != nil {
					t.Fatalf("PeekClientHello() error = %v", err)
				}
				if diff := cmp.Diff(cc.want, hello); diff != "" {
					t.Errorf("PeekClientHello() mismatch (-want +got):\n%s", diff)
				}
				got, err := io.ReadAll(replay)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, in.data) {
					t.Errorf("replay yielded %d bytes, want the %d sent", len(got), len(in.data))
				}
			})
		}
	}
}

// TestPeekThenHandshake peeks a live connection, then completes the handshake
// over the replay conn and checks crypto/tls saw the same SNI and ALPN.
func TestPeekThenHandshake(t *testing.T) {
	ca := certs.NewCA(t, "mesh")
	leaf := ca.Issue(t, certs.LeafOptions{DNSNames: []string{"backend.example.com"}})
	for _, cc := range clientConfigs {
		t.Run(cc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					return
				}
				defer c.Close()
				cfg := cc.cfg.Clone()
				cfg.RootCAs = ca.Pool()
				cfg.InsecureSkipVerify = cfg.ServerName != "backend.example.com"
				tc := tls.Client(c, cfg)
				if tc.Handshake() == nil {
					_, _ = tc.Write([]byte("ping"))
					_, _ = io.Copy(io.Discard, tc)
				}
			}()
			conn, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			hello, replay, err := PeekClientHello(conn)
			if err != nil {
				t.Fatalf("PeekClientHello() error = %v", err)
			}
			var seen *tls.ClientHelloInfo
			srv := tls.Server(replay, &tls.Config{
				Certificates: []tls.Certificate{leaf.TLS},
				NextProtos:   []string{"h2", "istio"},
				GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
					seen = hi
					return nil, nil
				},
			})
			if err := srv.Handshake(); err != nil {
				t.Fatalf("handshake over the replay conn: %v", err)
			}
			buf := make([]byte, 4)
			if _, err := io.ReadFull(srv, buf); err != nil || string(buf) != "ping" {
				t.Fatalf("read after handshake = %q, %v", buf, err)
			}
			srv.Close()
			want := ClientHello{IsTLS: true, ServerName: seen.ServerName, ALPN: seen.SupportedProtos}
			if diff := cmp.Diff(want, hello); diff != "" {
				t.Errorf("PeekClientHello() disagrees with crypto/tls (-crypto/tls +peek):\n%s", diff)
			}
		})
	}
}

func TestPeekNonTLSReturnsWithoutWaiting(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	_ = a.SetDeadline(time.Now().Add(10 * time.Second))
	more := make(chan struct{})
	go func() {
		defer b.Close()
		_, _ = b.Write([]byte("GET"))
		<-more // nothing else arrives until the peek has returned
		_, _ = b.Write([]byte(" / HTTP/1.1\r\n\r\n"))
	}()
	hello, replay, err := PeekClientHello(a)
	if err != nil {
		t.Fatalf("PeekClientHello() error = %v", err)
	}
	close(more)
	if hello.IsTLS {
		t.Errorf("IsTLS = true for an HTTP/1.1 request")
	}
	got, err := io.ReadAll(replay)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "GET / HTTP/1.1\r\n\r\n" {
		t.Errorf("replay yielded %q", got)
	}
}

func TestPeekClientHelloErrors(t *testing.T) {
	// ext builds one extension; hello builds a handshake record around a
	// ClientHello body with the given extensions block (nil: none).
	ext := func(typ uint16, data ...byte) []byte {
		return append([]byte{byte(typ >> 8), byte(typ), byte(len(data) >> 8), byte(len(data))}, data...)
	}
	body := func(exts []byte) []byte {
		b := []byte{3, 3}
		b = append(b, make([]byte, 32)...)    // random
		b = append(b, 0)                      // session id
		b = append(b, 0, 2, 0x13, 0x01, 1, 0) // cipher suites, compression
		if exts != nil {
			b = append(b, byte(len(exts)>>8), byte(len(exts)))
			b = append(b, exts...)
		}
		return b
	}
	record := func(b []byte) []byte {
		msg := append([]byte{1, byte(len(b) >> 16), byte(len(b) >> 8), byte(len(b))}, b...)
		return append([]byte{0x16, 3, 1, byte(len(msg) >> 8), byte(len(msg))}, msg...)
	}
	sni := func(name string) []byte {
		return ext(0, append([]byte{0, byte(len(name) + 3), 0, 0, byte(len(name))}, name...)...)
	}
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

	tests := []struct {
		name    string
		data    []byte
		want    ClientHello
		wantErr error
	}{
		{name: "nothing sent", data: nil, wantErr: io.EOF},
		{name: "alert record is not TLS handshake", data: []byte{0x15, 3, 3, 0, 2, 2, 40}, want: ClientHello{}},
		{name: "no extensions block", data: record(body(nil)), want: ClientHello{IsTLS: true}},
		{name: "unknown extensions skipped", data: record(body(cat(ext(0xfafa), sni("a.example"), ext(43, 2, 3, 4)))), want: ClientHello{IsTLS: true, ServerName: "a.example"}},
		{name: "truncated record", data: record(body(nil))[:20], want: ClientHello{IsTLS: true}, wantErr: io.ErrUnexpectedEOF},
		{name: "bad record version", data: []byte{0x16, 2, 0, 0, 4, 1, 0, 0, 0}, want: ClientHello{IsTLS: true}, wantErr: ErrMalformedClientHello},
		{name: "empty record", data: []byte{0x16, 3, 1, 0, 0}, want: ClientHello{IsTLS: true}, wantErr: ErrMalformedClientHello},
		{name: "oversized record", data: []byte{0x16, 3, 1, 0x40, 0x01}, want: ClientHello{IsTLS: true}, wantErr: ErrMalformedClientHello},
		{name: "server hello", data: []byte{0x16, 3, 3, 0, 4, 2, 0, 0, 0}, want: ClientHello{IsTLS: true}, wantErr: ErrMalformedClientHello},
		{name: "too large", data: []byte{0x16, 3, 1, 0, 4, 1, 1, 0, 0}, want: ClientHello{IsTLS: true}, wantErr: ErrClientHelloTooLarge},
		{name: "application data mid hello", data: cat(refragment(record(body(nil)), 10)[:15], []byte{0x17, 3, 3, 0, 1, 0}), want: ClientHello{IsTLS: true}, wantErr: ErrMalformedClientHello},
		{name: "odd cipher suites length", data: record(cat(body(nil)[:35], []byte{0, 3, 0, 0, 0, 1, 0})), want: ClientHello{IsTLS: true}, wantErr: ErrMalformedClientHello},
		{name: "no compression methods", data: record(cat(body(nil)[:35], []byte{0, 2, 0x13, 0x01, 0})), want: ClientHello{IsTLS: true}, wantErr: ErrMalformedClientHello},
		{name: "session id too long", data: record(cat(body(nil)[:34], []byte{33}, make([]byte, 33), []byte{0, 2, 0x13, 0x01, 1, 0})), want: ClientHello{IsTLS: true}, wantErr: ErrMalformedClientHello},
		{name: "extensions length mismatch", data: record(cat(body(sni("a")), []byte{0})), want: ClientHello{IsTLS: true}, wantErr: ErrMalformedClientHello},
		{name: "extension overruns", data: record(body([]byte{0, 0, 0, 9, 0})), want: ClientHello{IsTLS: true}, wantErr: ErrMalformedClientHello},
		{name: "duplicate server_name", data: record(body(cat(sni("a"), sni("b")))), want: ClientHello{IsTLS: true}, wantErr: ErrMalformedClientHello},
		{name: "two host names", data: record(body(ext(0, 0, 8, 0, 0, 1, 'a', 0, 0, 1, 'b'))), want: ClientHello{IsTLS: true}, wantErr: ErrMalformedClientHello},
		{name: "NUL in host name", data: record(body(sni("a\x00b"))), want: ClientHello{IsTLS: true}, wantErr: ErrMalformedClientHello},
		{name: "empty host name", data: record(body(sni(""))), want: ClientHello{IsTLS: true}, wantErr: ErrMalformedClientHello},
		{name: "unknown name type", data: record(body(ext(0, 0, 4, 1, 0, 1, 'a'))), want: ClientHello{IsTLS: true}, wantErr: ErrMalformedClientHello},
		{name: "empty ALPN list", data: record(body(ext(16, 0, 0))), want: ClientHello{IsTLS: true}, wantErr: ErrMalformedClientHello},
		{name: "empty ALPN name", data: record(body(ext(16, 0, 3, 2, 'h', '2', 0))), want: ClientHello{IsTLS: true}, wantErr: ErrMalformedClientHello},
		{name: "ALPN name overruns", data: record(body(ext(16, 0, 2, 5, 'h'))), want: ClientHello{IsTLS: true}, wantErr: ErrMalformedClientHello},
		{name: "duplicate ALPN", data: record(body(cat(ext(16, 0, 3, 2, 'h', '2'), ext(16, 0, 3, 2, 'h', '2')))), want: ClientHello{IsTLS: true}, wantErr: ErrMalformedClientHello},
		{name: "ALPN parsed", data: record(body(ext(16, 0, 8, 2, 'h', '2', 4, 'a', 'b', 'c', 'd'))), want: ClientHello{IsTLS: true, ALPN: []string{"h2", "abcd"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hello, replay, err := PeekClientHello(newMemConn(tc.data, 0))
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("PeekClientHello() error = %v, want %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, hello); diff != "" {
				t.Errorf("PeekClientHello() mismatch (-want +got):\n%s", diff)
			}
			if got, _ := io.ReadAll(replay); !bytes.Equal(got, tc.data) {
				t.Errorf("replay yielded %x, want %x", got, tc.data)
			}
		})
	}
}

func TestReplayConnPassesThrough(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	go func() { _, _ = b.Write([]byte("hello")) }()
	_ = a.SetDeadline(time.Now().Add(10 * time.Second))
	_, replay, err := PeekClientHello(a)
	if err != nil {
		t.Fatal(err)
	}
	if got := replay.(interface{ NetConn() net.Conn }).NetConn(); got != a {
		t.Errorf("NetConn() = %v, want the peeked conn", got)
	}
	if replay.LocalAddr() != a.LocalAddr() || replay.RemoteAddr() != a.RemoteAddr() {
		t.Errorf("addresses not passed through")
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(replay, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("replayed %q, %v", buf, err)
	}
	// A deadline in the past must reach the underlying conn.
	if err := replay.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := replay.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Read after past deadline: %v, want deadline exceeded", err)
	}
	_ = replay.SetDeadline(time.Now().Add(10 * time.Second))
	go func() { _, _ = replay.Write([]byte("back")) }()
	if _, err := io.ReadFull(b, buf[:4]); err != nil || string(buf[:4]) != "back" {
		t.Errorf("write passed through as %q, %v", buf[:4], err)
	}
	if err := replay.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Read(buf); err != io.EOF {
		t.Errorf("peer Read after Close = %v, want EOF", err)
	}
}

func TestReplayConnWriteTo(t *testing.T) {
	record := captureClientHello(t, clientConfigs[0].cfg)
	data := append(bytes.Clone(record), "rest of the stream"...)
	_, replay, err := PeekClientHello(newMemConn(data, 3))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	n, err := io.Copy(&out, replay) // uses replayConn.WriteTo
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(data)) || !bytes.Equal(out.Bytes(), data) {
		t.Errorf("WriteTo copied %d bytes, want %d identical", n, len(data))
	}
}
