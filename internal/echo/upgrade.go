package echo

import (
	"io"
	"net"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/websocket"
)

// upgradeProto returns the first protocol an HTTP/1.1 upgrade request asks
// for. An "h2c" upgrade is ignored and served as plain HTTP/1.1, as RFC 9113
// §3.1 allows: net/http does not implement it, and echoing it raw would
// break clients such as curl --http2 that try it first.
func upgradeProto(r *http.Request) (string, bool) {
	if !r.ProtoAtLeast(1, 1) || r.ProtoMajor != 1 {
		return "", false
	}
	if !httpguts.HeaderValuesContainsToken(r.Header["Connection"], "upgrade") {
		return "", false
	}
	proto, _, _ := strings.Cut(r.Header.Get("Upgrade"), ",")
	proto = strings.TrimSpace(proto)
	if proto == "" || strings.EqualFold(proto, "h2c") {
		return "", false
	}
	return proto, true
}

// serveUpgrade answers 101 Switching Protocols and then echoes raw bytes on
// the hijacked connection until the client half-closes: a generic test of
// a proxy's upgrade tunnelling that needs no particular protocol.
func (s *Server) serveUpgrade(w http.ResponseWriter, r *http.Request, proto string) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "echo: upgrade: "+err.Error(), http.StatusInternalServerError)
		return
	}
	defer conn.Close()
	if !s.tunnels.add(conn) {
		return // draining
	}
	defer s.tunnels.remove(conn)
	// proto comes from a request header that net/http has already checked
	// for CR and LF; name and version are checked by New.
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + proto +
		"\r\nX-Echo-Name: " + s.opts.Name + "\r\nX-Echo-Version: " + s.opts.Version + "\r\n\r\n")
	// Bytes the client sent right after its request may already sit in the
	// reader; echo them before copying from the connection itself.
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		brw.Write(b)
	}
	if brw.Flush() != nil {
		return
	}
	echoConn(conn)
}

// echoConn copies everything conn reads back to it, then half-closes it so
// the peer reads EOF after the last echoed byte.
func echoConn(conn net.Conn) {
	bp := copyBufs.Get().(*[]byte)
	_, err := io.CopyBuffer(conn, conn, *bp)
	copyBufs.Put(bp)
	if err != nil {
		return
	}
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// newWebSocket returns the /ws handler, which echoes every message back
// with its type (text or binary) kept. It accepts any Origin: the echo
// server has nothing a cross-site page could steal.
func (s *Server) newWebSocket() websocket.Server {
	return websocket.Server{
		Handshake: func(c *websocket.Config, _ *http.Request) error {
			if len(c.Protocol) > 1 { // the server must pick one subprotocol
				c.Protocol = c.Protocol[:1]
			}
			return nil
		},
		Handler: s.serveWebSocket,
	}
}

func (s *Server) serveWebSocket(ws *websocket.Conn) {
	if !s.tunnels.add(ws) {
		return // draining; the websocket server closes ws
	}
	defer s.tunnels.remove(ws)
	var m wsMessage
	for {
		if err := wsCodec.Receive(ws, &m); err != nil {
			return
		}
		if err := wsCodec.Send(ws, &m); err != nil {
			return
		}
	}
}

// wsMessage is one WebSocket message and its frame type.
type wsMessage struct {
	data []byte
	typ  byte
}

// wsCodec moves wsMessage values, keeping the frame type that
// websocket.Message would lose.
var wsCodec = websocket.Codec{
	Marshal: func(v any) ([]byte, byte, error) {
		m := v.(*wsMessage)
		return m.data, m.typ, nil
	},
	Unmarshal: func(data []byte, typ byte, v any) error {
		m := v.(*wsMessage)
		m.data, m.typ = data, typ
		return nil
	},
}
