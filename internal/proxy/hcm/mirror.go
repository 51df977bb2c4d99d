package hcm

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster/lb"
	"github.com/trellis-mesh/trellis/internal/proxy/route"
)

// mirrorTimeout bounds a shadow request when the route has no timeout.
const mirrorTimeout = 15 * time.Second

// mirror sends a copy of out to each sampled shadow cluster, fire and
// forget: it never delays or fails the primary request. body is the
// request body (nil for none). Shadow answers are read and dropped; their
// outcome shows only in the shadow cluster's metrics.
func (s *stream) mirror(rt *route.Route, out *http.Request, body []byte) {
	for i := range rt.Mirrors {
		m := &rt.Mirrors[i]
		if !m.Sampled() {
			continue
		}
		cl := s.cfg.Clusters.Get(m.Cluster)
		if cl == nil {
			continue
		}
		shadow := out.Clone(context.Background())
		if !m.NoSuffix {
			shadow.Host = shadowHost(out.Host)
		}
		timeout := rt.Timeout
		if timeout <= 0 {
			timeout = mirrorTimeout
		}
		proto := s.r.ProtoMajor
		go func() {
			host := cl.Pick(&lb.Request{})
			if host == nil {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			req := shadow.WithContext(ctx)
			u := *req.URL
			u.Scheme, u.Host = cl.Scheme, host.Address
			req.URL = &u
			req.Body, req.ContentLength = nil, 0
			if body != nil {
				req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
			}
			host.Begin()
			defer host.End()
			start := time.Now()
			resp, err := cl.Transport(proto).RoundTrip(req)
			cl.Stats.Duration.Observe(time.Since(start).Seconds())
			if err != nil {
				cl.Stats.Done(0)
				return
			}
			cl.Stats.Done(resp.StatusCode)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
}

// shadowHost appends "-shadow" to the host part of an authority, as Envoy
// does: "api:8080" becomes "api-shadow:8080".
func shadowHost(authority string) string {
	if h, p, err := net.SplitHostPort(authority); err == nil {
		return net.JoinHostPort(h+"-shadow", p)
	}
	return authority + "-shadow"
}
