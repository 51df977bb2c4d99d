package hcm

import (
	"bufio"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/trellis-mesh/trellis/internal/telemetry/accesslog"
)

// tunnel completes an HTTP/1.1 Upgrade (WebSocket and the like): it sends
// the upstream's 101 downstream and then copies bytes both ways until either
// side closes.
func (s *stream) tunnel(resp *http.Response) {
	up, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		s.localReply(http.StatusBadGateway, accesslog.UpstreamProtocolError, ReasonUpgradeFailed,
			"upstream answered 101 without an upgradable connection")
		return
	}
	defer up.Close()
	conn, brw, err := http.NewResponseController(s.w).Hijack()
	if err != nil {
		s.localReply(http.StatusInternalServerError, 0, ReasonUpgradeFailed, "cannot take over the downstream connection: "+err.Error())
		return
	}
	defer conn.Close()
	h := resp.Header.Clone()
	s.applyResponseMutations(h)
	s.status, s.wroteHeader = resp.StatusCode, true
	_ = conn.SetDeadline(time.Time{})
	if _, err := brw.WriteString("HTTP/1.1 101 Switching Protocols\r\n"); err != nil {
		return
	}
	if err := h.Write(brw); err != nil {
		return
	}
	if _, err := brw.WriteString("\r\n"); err != nil {
		return
	}
	if err := brw.Flush(); err != nil {
		return
	}
	tunnelIn := &countingBody{rc: io.NopCloser(bufioReader{brw.Reader, conn})}
	s.reqBody = tunnelIn
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Bytes the server already buffered from the client come first.
		_, _ = io.Copy(up, tunnelIn)
		closeWrite(up)
	}()
	n, _ := io.Copy(conn, up)
	s.bytesSent += n
	closeWrite(conn)
	wg.Wait()
}

// bufioReader reads what a bufio.Reader holds, then the connection.
type bufioReader struct {
	br *bufio.Reader
	r  io.Reader
}

func (b bufioReader) Read(p []byte) (int, error) {
	if b.br.Buffered() > 0 {
		return b.br.Read(p)
	}
	return b.r.Read(p)
}

// closeWrite half-closes c when it can, and closes it otherwise, so the
// peer always learns that no more bytes come.
func closeWrite(c any) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		return
	}
	if cl, ok := c.(io.Closer); ok {
		_ = cl.Close()
	}
}

// idleTimer fires f when no activity was recorded for d (Envoy's
// stream_idle_timeout). A zero d disables it.
type idleTimer struct {
	t *time.Timer
	d time.Duration
}

func newIdleTimer(d time.Duration, f func()) *idleTimer {
	if d <= 0 {
		return &idleTimer{}
	}
	return &idleTimer{t: time.AfterFunc(d, f), d: d}
}

func (i *idleTimer) touch() {
	if i.t != nil {
		i.t.Reset(i.d)
	}
}

func (i *idleTimer) stop() {
	if i.t != nil {
		i.t.Stop()
	}
}
