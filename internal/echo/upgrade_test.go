package echo

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/websocket"
)

func TestWebSocket(t *testing.T) {
	s := startServer(t, Options{})
	ws, err := websocket.Dial("ws://"+s.Addr()+"/ws", "", "http://example.test/")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	tests := []struct {
		name string
		send any // string: text frame, []byte: binary frame
		want wsMessage
	}{
		{"text", "hello", wsMessage{[]byte("hello"), websocket.TextFrame}},
		{"binary", []byte{0, 1, 2, 255}, wsMessage{[]byte{0, 1, 2, 255}, websocket.BinaryFrame}},
		{"large text", strings.Repeat("x", 100_000), wsMessage{bytes.Repeat([]byte("x"), 100_000), websocket.TextFrame}},
	}
	for _, tc := range tests {
		if err := websocket.Message.Send(ws, tc.send); err != nil {
			t.Fatal(err)
		}
		var got wsMessage
		if err := wsCodec.Receive(ws, &got); err != nil {
			t.Fatal(err)
		}
		if got.typ != tc.want.typ || !bytes.Equal(got.data, tc.want.data) {
			t.Errorf("%s: echo is frame type %d %.20q, want %d %.20q", tc.name, got.typ, got.data, tc.want.typ, tc.want.data)
		}
	}
}

// TestRawUpgrade tunnels bytes through a non-WebSocket upgrade, including
// bytes sent in the same packet as the request.
func TestRawUpgrade(t *testing.T) {
	s := startServer(t, Options{})
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := "GET /tunnel HTTP/1.1\r\nHost: echo\r\nConnection: keep-alive, Upgrade\r\nUpgrade: test-proto/1\r\n\r\nearly bytes;"
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Upgrade") != "test-proto/1" {
		t.Fatalf("got %s, Upgrade %q; want 101 test-proto/1", resp.Status, resp.Header.Get("Upgrade"))
	}
	checkIdentity(t, resp.Header)
	if _, err := io.WriteString(conn, "late bytes"); err != nil {
		t.Fatal(err)
	}
	conn.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	if want := "early bytes;late bytes"; string(got) != want {
		t.Errorf("tunnel echoed %q, want %q", got, want)
	}
}

// TestH2CUpgradeIgnored checks curl --http2 style upgrades get plain
// HTTP/1.1 instead of a raw tunnel.
func TestH2CUpgradeIgnored(t *testing.T) {
	s := startServer(t, Options{})
	c := clients(t, s)[0]
	resp, body := c.get(t, "/", "Connection", "Upgrade, HTTP2-Settings", "Upgrade", "h2c", "HTTP2-Settings", "AAMAAABkAAQCAAAAAAIAAAAA")
	if resp.StatusCode != http.StatusOK || decodeInfo(t, body).Proto != "HTTP/1.1" {
		t.Errorf("h2c upgrade: %s %s, want a 200 HTTP/1.1 description", resp.Status, body)
	}
}

func TestTCPEcho(t *testing.T) {
	s := startServer(t, Options{TCPAddr: "127.0.0.1:0"})
	for range 2 {
		conn, err := net.Dial("tcp", s.TCPAddr())
		if err != nil {
			t.Fatal(err)
		}
		want := bytes.Repeat([]byte("tcp echo "), 100_000)
		go func() {
			conn.Write(want)
			conn.(*net.TCPConn).CloseWrite()
		}()
		got, err := io.ReadAll(conn)
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("echoed %d bytes, want the %d sent", len(got), len(want))
		}
	}
	if got := s.Stats().TCPConnections; got != 2 {
		t.Errorf("TCPConnections = %d, want 2", got)
	}
}
