package hcm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster"
	"github.com/trellis-mesh/trellis/internal/proxy/cluster/lb"
	"github.com/trellis-mesh/trellis/internal/proxy/cluster/outlier"
	"github.com/trellis-mesh/trellis/internal/proxy/route"
	"github.com/trellis-mesh/trellis/internal/telemetry/accesslog"
	"github.com/trellis-mesh/trellis/internal/telemetry/trace"
)

var (
	errRouteTimeout  = errors.New("route timeout")
	errStreamIdle    = errors.New("stream idle timeout")
	errPerTryTimeout = errors.New("per-try timeout")
	errMaxDuration   = errors.New("max stream duration")
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// forward is the router filter: pick a cluster and host, send the request
// upstream and stream the response back.
func (s *stream) forward(rt *route.Route, path string) {
	r := s.r
	name := rt.PickCluster(r)
	s.cluster = name
	cl := s.cfg.Clusters.Get(name)
	if cl == nil {
		code := http.StatusServiceUnavailable
		if rt.ClusterHeader != "" {
			code = http.StatusNotFound // Envoy: cluster_header naming no cluster is a 404
		}
		s.localReply(code, accesslog.NoClusterFound, ReasonClusterNotFound,
			fmt.Sprintf("route %q: cluster %q not found", rt.Name, name))
		return
	}
	upgrade := isUpgrade(r)
	if upgrade && !s.upgradeAllowed(rt) {
		s.localReply(http.StatusForbidden, 0, ReasonUpgradeRejected,
			fmt.Sprintf("route %q: upgrade to %q is not enabled (upgrade_configs)", rt.Name, r.Header.Get("Upgrade")))
		return
	}
	var lbReq lb.Request
	if len(rt.HashPolicies) > 0 {
		lbReq.Hash, lbReq.HasHash = rt.Hash(r, s.remote)
	}

	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	var routeTimer *time.Timer
	if d := rt.EffectiveTimeout(r); d > 0 {
		s.timeout = d
		routeTimer = time.AfterFunc(d, func() { cancel(errRouteTimeout) })
		defer routeTimer.Stop()
	}
	if rt.MaxStreamDuration > 0 {
		msd := time.AfterFunc(rt.MaxStreamDuration, func() { cancel(errMaxDuration) })
		defer msd.Stop()
	}
	idleTimeout := s.cfg.StreamIdleTimeout
	if rt.IdleTimeoutSet {
		idleTimeout = rt.IdleTimeout
	}
	idle := newIdleTimer(idleTimeout, func() { cancel(errStreamIdle) })
	defer idle.stop()

	out := r.WithContext(ctx)
	out.RequestURI = ""
	out.Close = false
	u := url.URL{Scheme: cl.Scheme, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	if p, changed := rt.RewritePath(path); changed {
		if up, err := url.PathUnescape(p); err == nil {
			u.Path, u.RawPath = up, p
		}
	}
	out.URL = &u
	if rt.HostRewrite != "" {
		out.Host = rt.HostRewrite
	}
	policy := rt.Retry
	var replay *replayBody
	switch {
	case r.ContentLength == 0 || r.Body == nil:
		out.Body = nil
	case policy != nil && policy.NumRetries > 0 || len(rt.Mirrors) > 0:
		limit := int64(route.DefaultRetryBufferLimit)
		if policy != nil {
			limit = policy.BufferLimit
		}
		replay = newReplayBody(s.teeRequestBody(r.Body), limit)
		s.reqBody = replay
	default:
		cb := &countingBody{rc: s.teeRequestBody(r.Body)}
		s.reqBody, out.Body = cb, cb
	}
	if out.Body != nil && r.ProtoMajor == 1 {
		// The response may start while the request body still streams
		// (an echo, a gRPC-Web-like exchange); net/http's HTTP/1 server
		// otherwise stops reading the body at the first response write.
		_ = http.NewResponseController(s.w).EnableFullDuplex()
	}
	s.applyRequestMutations(out.Header)
	defer func() { cl.Stats.BytesSent.Add(float64(s.reqBody.count())) }()
	if len(rt.Mirrors) > 0 {
		if out.Body == nil && replay == nil {
			s.mirror(rt, out, nil)
		} else {
			// A body is mirrored once the primary has read it all (and
			// only if it fit the buffer), so the shadow never holds up
			// the primary.
			defer func() {
				if b, ok := replay.complete(); ok {
					s.mirror(rt, out, b)
				}
			}()
		}
	}

	var tried []*lb.Host
	retryHeld := false // a retry admitted by the circuit breaker, not yet answered
	defer func() {
		if retryHeld {
			cl.ReleaseRetry()
		}
	}()
	for attempt := 0; ; attempt++ {
		host := pickHost(cl, &lbReq, policy, tried)
		if host == nil {
			s.localReply(http.StatusServiceUnavailable, accesslog.NoHealthyUpstream, ReasonNoHealthyUpstream,
				fmt.Sprintf("cluster %q has no healthy upstream host", name))
			return
		}
		s.upstreamHost = host.Address
		s.vars.UpstreamAddr = host.Address
		u.Host = host.Address
		if rt.AutoHostRewrite && host.Hostname != "" {
			out.Host = host.Hostname
		}
		tryCtx, tryCancel := ctx, context.CancelFunc(func() {})
		if policy != nil && policy.PerTryTimeout > 0 {
			tryCtx, tryCancel = context.WithTimeoutCause(ctx, policy.PerTryTimeout, errPerTryTimeout)
		}
		if attempt > 0 || policy != nil && policy.PerTryTimeout > 0 {
			out = out.WithContext(tryCtx)
		}
		if replay != nil {
			out.Body = replay.attempt()
		}
		if !cl.AcquireRequest() {
			tryCancel()
			s.localReply(http.StatusServiceUnavailable, accesslog.UpstreamOverflow, ReasonOverflow,
				fmt.Sprintf("cluster %q: too many requests in flight (circuit_breakers max_requests)", name))
			return
		}
		var attemptSpan trace.ClientSpan
		if s.span.Active() {
			attemptSpan = s.startAttempt(out, name, host)
		}
		host.Begin()
		t0 := time.Now()
		resp, err := cl.Transport(r.ProtoMajor).RoundTrip(out)
		if retryHeld {
			cl.ReleaseRetry()
			retryHeld = false
		}
		s.upstreamTime = time.Since(t0)
		cl.Stats.Duration.Observe(s.upstreamTime.Seconds())
		if err != nil {
			cl.Stats.Done(0)
			s.reportFailure(cl, host, tryCtx, err)
		} else {
			cl.Stats.Done(resp.StatusCode)
			cl.Report(host, outlier.HTTPStatus, resp.StatusCode)
		}
		if cl.ObservesLatency() {
			// Failures and "overloaded" answers count as slow, so a
			// latency-aware balancer steers away from them.
			overloaded := err != nil || resp.StatusCode == http.StatusTooManyRequests || resp.Header.Get("Grpc-Status") == "8"
			host.Observe(s.upstreamTime, overloaded)
		}
		if s.retry(ctx, tryCtx, policy, attempt, replay, cl, resp, err) {
			attemptSpan.End(statusOf(resp), err)
			retryHeld = true
			host.End()
			cl.ReleaseRequest()
			tryCancel()
			tried = append(tried, host)
			if !s.backoff(ctx, policy, attempt+1, resp) {
				s.upstreamError(ctx, ctx, cl, ctx.Err())
				return
			}
			continue
		}
		defer host.End()
		defer cl.ReleaseRequest()
		defer tryCancel()
		if attemptSpan.Recording() {
			// Ends once the response is streamed (or the exchange failed).
			defer attemptSpan.End(statusOf(resp), err)
		}
		if err != nil {
			s.upstreamError(ctx, tryCtx, cl, err)
			return
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			if routeTimer != nil {
				routeTimer.Stop() // the tunnel lives as long as both sides want it
			}
			idle.stop()
			s.tunnel(resp)
			return
		}
		s.copyResponse(tryCtx, resp, cl, idle)
		return
	}
}

// statusOf returns resp's status, 0 without a response.
func statusOf(resp *http.Response) int {
	if resp == nil {
		return 0
	}
	return resp.StatusCode
}

func (s *stream) upgradeAllowed(rt *route.Route) bool {
	t := strings.ToLower(s.r.Header.Get("Upgrade"))
	if v, ok := rt.Upgrades[t]; ok {
		return v
	}
	return s.cfg.Upgrades[t]
}

// upstreamError answers a request whose upstream exchange failed before any
// response header arrived.
func (s *stream) upstreamError(ctx, tryCtx context.Context, cl *cluster.Cluster, err error) {
	switch cause := context.Cause(tryCtx); {
	case errors.Is(cause, errRouteTimeout):
		s.localReply(http.StatusGatewayTimeout, accesslog.UpstreamRequestTimeout, ReasonUpstreamTimeout,
			fmt.Sprintf("route %q: upstream %s of cluster %q did not answer within the route timeout %v", s.route.Name, s.upstreamHost, cl.Name, s.timeout))
	case errors.Is(cause, errMaxDuration):
		s.localReply(http.StatusGatewayTimeout, accesslog.DurationTimeout, ReasonMaxDuration,
			fmt.Sprintf("route %q: stream exceeded max_stream_duration %v", s.route.Name, s.route.MaxStreamDuration))
	case errors.Is(cause, errPerTryTimeout):
		s.localReply(http.StatusGatewayTimeout, accesslog.UpstreamRequestTimeout, ReasonPerTryTimeout,
			fmt.Sprintf("route %q: upstream %s of cluster %q did not answer within the per-try timeout %v", s.route.Name, s.upstreamHost, cl.Name, s.route.Retry.PerTryTimeout))
	case errors.Is(cause, errStreamIdle):
		s.localReply(http.StatusGatewayTimeout, accesslog.StreamIdleTimeout, ReasonStreamIdle,
			fmt.Sprintf("stream idle waiting for upstream %s of cluster %q", s.upstreamHost, cl.Name))
	case ctx.Err() == nil && s.r.Context().Err() != nil:
		// The downstream went away; nobody reads a reply.
		s.flags |= accesslog.DownstreamConnectionTermination
		s.status = 0
	case errors.Is(err, cluster.ErrConnectionOverflow):
		s.localReply(http.StatusServiceUnavailable, accesslog.UpstreamOverflow, ReasonOverflow,
			fmt.Sprintf("cluster %q: %v", cl.Name, err))
	case cluster.IsConnectError(err):
		s.localReply(http.StatusServiceUnavailable, accesslog.UpstreamConnectionFailure, ReasonConnectFailure,
			fmt.Sprintf("cluster %q: cannot connect to upstream %s: %v", cl.Name, s.upstreamHost, errors.Unwrap(err)))
	default:
		s.localReply(http.StatusServiceUnavailable, accesslog.UpstreamConnectionTermination, ReasonUpstreamReset,
			fmt.Sprintf("cluster %q: upstream %s reset before responding: %v", cl.Name, s.upstreamHost, err))
	}
}

// copyResponse writes the upstream response downstream, streaming the body.
func (s *stream) copyResponse(ctx context.Context, resp *http.Response, cl *cluster.Cluster, idle *idleTimer) {
	defer resp.Body.Close()
	h := s.w.Header()
	for k, v := range resp.Header {
		h[k] = v
	}
	removeHopByHop(h, false)
	s.applyResponseMutations(h)
	s.responseHook(h)
	s.serverHeader(h)
	if s.cfg.Via != "" {
		h["Via"] = append(h["Via"], s.cfg.Via)
	}
	s.status, s.wroteHeader = resp.StatusCode, true
	s.w.WriteHeader(resp.StatusCode)

	flush := resp.ContentLength == -1 || strings.HasPrefix(resp.Header.Get("Content-Type"), "application/grpc") ||
		strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	var flusher http.Flusher
	if flush {
		flusher, _ = s.w.(http.Flusher)
		if flusher != nil {
			flusher.Flush()
		}
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			idle.touch()
			cl.Stats.BytesReceived.Add(float64(n))
			wn, werr := s.w.Write(buf[:n])
			s.bytesSent += int64(wn)
			if s.rspCapture != nil {
				_, _ = s.rspCapture.Write(buf[:wn])
			}
			if werr != nil {
				s.flags |= accesslog.DownstreamConnectionTermination
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			s.midStreamFailure(ctx)
			return
		}
	}
	for k, vv := range resp.Trailer {
		h[http.TrailerPrefix+k] = vv
	}
}

// midStreamFailure aborts a response whose headers were already sent: the
// downstream sees a reset (HTTP/2) or a closed connection (HTTP/1.1), never
// a truncated body that looks complete.
func (s *stream) midStreamFailure(ctx context.Context) {
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errRouteTimeout):
		s.flags |= accesslog.UpstreamRequestTimeout
		s.reason = ReasonUpstreamTimeout
	case errors.Is(cause, errPerTryTimeout):
		s.flags |= accesslog.UpstreamRequestTimeout
		s.reason = ReasonPerTryTimeout
	case errors.Is(cause, errMaxDuration):
		s.flags |= accesslog.DurationTimeout
		s.reason = ReasonMaxDuration
	case errors.Is(cause, errStreamIdle):
		s.flags |= accesslog.StreamIdleTimeout
		s.reason = ReasonStreamIdle
	case s.r.Context().Err() != nil:
		s.flags |= accesslog.DownstreamConnectionTermination
		return
	default:
		s.flags |= accesslog.UpstreamConnectionTermination
		s.reason = ReasonUpstreamReset
	}
	// serve's deferred finish logs the request while the panic unwinds;
	// net/http treats ErrAbortHandler as a silent abort.
	panic(http.ErrAbortHandler)
}

// reportFailure tells outlier detection about an attempt that got no
// answer. Overflows and cancellations by the downstream say nothing about
// the host and are not reported.
func (s *stream) reportFailure(cl *cluster.Cluster, h *lb.Host, tryCtx context.Context, err error) {
	switch {
	case errors.Is(err, cluster.ErrConnectionOverflow), s.r.Context().Err() != nil:
	case cluster.IsConnectError(err):
		cl.Report(h, outlier.ConnectFailure, 0)
	case context.Cause(tryCtx) != nil && !errors.Is(context.Cause(tryCtx), context.Canceled):
		cl.Report(h, outlier.Timeout, 0)
	default:
		cl.Report(h, outlier.Reset, 0)
	}
}
