package hcm

import (
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
