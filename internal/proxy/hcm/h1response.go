package hcm

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// h1Response is the http.ResponseWriter of h1Server. It frames the body
// with the Content-Length the handler set, or chunked (close-delimited for
// HTTP/1.0 clients), and writes trailers set with http.TrailerPrefix.
type h1Response struct {
	hc          *h1Conn
	req         *http.Request
	header      http.Header
	status      int
	wroteHeader bool
	chunked     bool
	noBody      bool
	closeAfter  bool
	length      int64 // -1: unknown
	written     int64
}

var (
	errBodyNotAllowed = errors.New("response body not allowed for this status or method")
	errTooLong        = errors.New("response body longer than its Content-Length")
)

func (w *h1Response) Header() http.Header { return w.header }

// WriteHeader sends the status line and headers.
func (w *h1Response) WriteHeader(code int) {
	if w.wroteHeader || w.hc.hijacked {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// Interim responses are not forwarded (the upstream's 100
		// Continue was already consumed by the upstream client).
		return
	}
	w.wroteHeader, w.status = true, code
	h := w.header
	bw := w.hc.bw
	w.length = -1
	if cl, ok := h["Content-Length"]; ok && len(cl) == 1 {
		if n, err := strconv.ParseInt(cl[0], 10, 64); err == nil && n >= 0 {
			w.length = n
		}
	}
	w.noBody = w.req.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified || code < 200
	closing := w.req.Close || headerHasToken(h, "Connection", "close")
	http11 := w.req.ProtoAtLeast(1, 1)
	switch {
	case w.noBody || w.length >= 0:
	case http11:
		w.chunked = true
	default:
		closing = true // HTTP/1.0: the body ends when the connection does
	}
	w.closeAfter = closing

	bw.WriteString(statusLine(code))
	for k, vs := range h {
		if k == "Transfer-Encoding" || (k == "Content-Length" && (w.length < 0 || code == http.StatusNoContent)) || strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		if k == "Connection" && code != http.StatusSwitchingProtocols {
			continue
		}
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(sanitize(v))
			bw.WriteString("\r\n")
		}
	}
	if _, ok := h["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.WriteString(httpDate())
		bw.WriteString("\r\n")
	}
	switch {
	case code == http.StatusSwitchingProtocols:
	case w.chunked:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	case closing:
		bw.WriteString("Connection: close\r\n")
	case !http11:
		bw.WriteString("Connection: keep-alive\r\n")
	}
	if w.chunked && closing {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
}

// sanitize drops CR and LF from a header value so a value can never split
// the response.
func sanitize(v string) string {
	if !strings.ContainsAny(v, "\r\n") {
		return v
	}
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
}

func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h[key] {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func (w *h1Response) Write(p []byte) (int, error) {
	if w.hc.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if w.noBody {
		return 0, errBodyNotAllowed
	}
	if w.length >= 0 && w.written+int64(len(p)) > w.length {
		return 0, errTooLong
	}
	bw := w.hc.bw
	if w.chunked {
		var size [16]byte
		bw.Write(strconv.AppendInt(size[:0], int64(len(p)), 16))
		bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	w.written += int64(n)
	if w.chunked && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	return n, err
}

// Flush sends what is buffered.
func (w *h1Response) Flush() {
	_ = w.FlushError()
}

// FlushError sends what is buffered (http.ResponseController uses it).
func (w *h1Response) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.hc.bw.Flush()
}

// EnableFullDuplex is a no-op: this server never stops reading a request
// body because a response started (http.ResponseController uses it).
func (w *h1Response) EnableFullDuplex() error { return nil }

// Hijack hands the connection to the caller (upgrades).
func (w *h1Response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hc.hijacked {
		return nil, nil, http.ErrHijacked
	}
	w.hc.hijacked = true
	if err := w.hc.bw.Flush(); err != nil {
		return nil, nil, err
	}
	w.hc.c.SetDeadline(time.Time{})
	return w.hc.c, bufio.NewReadWriter(w.hc.br, w.hc.bw), nil
}

// finish ends the response: headers if none were sent, the last chunk and
// trailers, then a flush.
func (w *h1Response) finish() error {
	if !w.wroteHeader {
		if _, ok := w.header["Content-Length"]; !ok {
			w.header["Content-Length"] = zeroLength
		}
		w.WriteHeader(http.StatusOK)
	}
	bw := w.hc.bw
	if w.chunked {
		bw.WriteString("0\r\n")
		for k, vs := range w.header {
			if !strings.HasPrefix(k, http.TrailerPrefix) {
				continue
			}
			for _, v := range vs {
				bw.WriteString(strings.TrimPrefix(k, http.TrailerPrefix))
				bw.WriteString(": ")
				bw.WriteString(sanitize(v))
				bw.WriteString("\r\n")
			}
		}
		bw.WriteString("\r\n")
	} else if w.length >= 0 && w.written != w.length && !w.noBody {
		// A body shorter than announced: the client must not wait for
		// the rest on a connection we would reuse.
		w.closeAfter = true
	}
	return bw.Flush()
}

var zeroLength = []string{"0"}

// httpDate returns the current time in HTTP date format, refreshed at most
// once per second.
func httpDate() string {
	now := time.Now().Unix()
	if d := cachedDate.Load(); d != nil && d.unix == now {
		return d.s
	}
	d := &dateValue{unix: now, s: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	cachedDate.Store(d)
	return d.s
}

type dateValue struct {
	unix int64
	s    string
}

var cachedDate atomic.Pointer[dateValue]

// statusLines holds "HTTP/1.1 <code> <text>\r\n" for every valid code.
var statusLines = func() []string {
	lines := make([]string, 600)
	for code := 100; code < 600; code++ {
		lines[code] = "HTTP/1.1 " + strconv.Itoa(code) + " " + http.StatusText(code) + "\r\n"
	}
	return lines
}()

func statusLine(code int) string {
	if code >= 100 && code < 600 {
		return statusLines[code]
	}
	return "HTTP/1.1 " + strconv.Itoa(code) + " \r\n"
}
