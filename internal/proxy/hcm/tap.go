package hcm

import (
	"io"
	"net/http"
	"time"

	"github.com/trellis-mesh/trellis/internal/telemetry/tap"
)

// tap hands the finished request to the proxy's tap (an open tap
// subscription; docs/tap.md). It runs only while one is open.
func (s *stream) tap(t *tap.Tap, d time.Duration) {
	c := s.cfg
	r := tap.Request{
		Start: s.start, Duration: d, Inbound: c.inbound, Cluster: s.cluster,
		Method: s.method, Authority: s.authority, Path: s.path, RequestID: s.requestID,
		Remote: s.remote, Local: s.vars.LocalAddr, Upstream: s.upstreamHost, TLS: s.r.TLS,
		Status: s.status, GRPCStatus: -1, BytesIn: s.reqBody.count(), BytesOut: s.bytesSent,
		Flags: s.flags, Reason: s.reason, RequestHeader: s.r.Header, ResponseHeader: s.w.Header(),
		RequestBody: s.reqCapture, ResponseBody: s.rspCapture,
	}
	if s.vhost != nil {
		r.VirtualHost = s.vhost.Name
	}
	if s.route != nil {
		r.Route = s.route.Name
	}
	if cl := c.Clusters.Get(s.cluster); cl != nil {
		r.UpstreamTLS = cl.Scheme == "https"
	}
	if s.wroteHeader && isGRPC(s.r) {
		r.GRPCStatus = s.grpcStatus()
	}
	t.Observe(&r)
}

// captureBodies starts keeping the first n bytes of the request and
// response bodies for a tap that asked for them (Tap.BodyLimit, decided
// at the request's start). The request body is teed where it is handed
// to the upstream (teeRequestBody), the response body where it is
// written downstream: bounded copies that never hold a byte back.
func (s *stream) captureBodies(n int) {
	declared := s.r.ContentLength
	if s.r.Body == nil || s.r.Body == http.NoBody {
		declared = 0
	}
	s.reqCapture, s.rspCapture = tap.NewCapture(n, declared), tap.NewCapture(n, -1)
}

// teeRequestBody returns rc, teed into the request body's capture when
// there is one. The tee is allocated per request, never pooled: upstream
// transports may read a body after the request ended.
func (s *stream) teeRequestBody(rc io.ReadCloser) io.ReadCloser {
	if s.reqCapture == nil {
		return rc
	}
	return &teeBody{rc: rc, c: s.reqCapture}
}

// teeBody copies what is read from rc into a capture.
type teeBody struct {
	rc io.ReadCloser
	c  *tap.Capture
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		_, _ = b.c.Write(p[:n])
	}
	return n, err
}

func (b *teeBody) Close() error { return b.rc.Close() }
