package hcm

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster"
	"github.com/trellis-mesh/trellis/internal/proxy/cluster/lb"
	"github.com/trellis-mesh/trellis/internal/proxy/route"
	"github.com/trellis-mesh/trellis/internal/telemetry/accesslog"
)

// pickHost chooses the host for an attempt. With the previous_hosts retry
// predicate a host already tried is avoided, re-picking up to
// host_selection_retry_max_attempts times (Envoy's semantics: the last pick
// is used even if it was tried before).
func pickHost(cl *cluster.Cluster, req *lb.Request, p *route.RetryPolicy, tried []*lb.Host) *lb.Host {
	h := cl.Pick(req)
	if p == nil || !p.PreviousHosts || len(tried) == 0 {
		return h
	}
	for i := 0; i < p.HostSelectAttempts && h != nil && slices.Contains(tried, h); i++ {
		h = cl.Pick(req)
	}
	return h
}

// retry decides whether the attempt that produced resp or err is retried:
// the policy's conditions match, retries remain, the body can be sent again
// and the cluster's retry circuit breaker (or budget) admits one more. When
// a matching failure cannot be retried because retries are used up, the
// request is flagged URX.
func (s *stream) retry(ctx, tryCtx context.Context, p *route.RetryPolicy, attempt int, replay *replayBody,
	cl *cluster.Cluster, resp *http.Response, err error) bool {
	if p == nil || ctx.Err() != nil || !retriable(p, tryCtx, resp, err) {
		return false
	}
	if attempt >= p.NumRetries {
		s.flags |= accesslog.UpstreamRetryLimitExceeded
		return false
	}
	if replay != nil && !replay.replayable() {
		s.reason = ReasonBodyTooLargeToRetry
		return false
	}
	if !cl.AcquireRetry() {
		s.flags |= accesslog.UpstreamRetryLimitExceeded
		return false
	}
	if resp != nil {
		resp.Body.Close()
	}
	s.retries++
	return true
}

// retriable reports whether the outcome matches the policy's retry_on.
func retriable(p *route.RetryPolicy, tryCtx context.Context, resp *http.Response, err error) bool {
	if err != nil {
		if errors.Is(err, cluster.ErrConnectionOverflow) {
			return false // a circuit breaker said no; retrying would defeat it
		}
		perTry := errors.Is(context.Cause(tryCtx), errPerTryTimeout)
		connect := cluster.IsConnectError(err)
		switch {
		case p.On&(route.Retry5xx|route.RetryGatewayError) != 0:
			return true // connect failures, resets and per-try timeouts answer 503/504
		case connect && p.On&route.RetryConnectFailure != 0:
			return true
		case !connect && p.On&route.RetryReset != 0:
			return true
		case perTry && p.On&route.RetryReset != 0:
			return true
		case p.On&route.RetryRefusedStream != 0 && strings.Contains(err.Error(), "REFUSED_STREAM"):
			return true
		}
		return false
	}
	grpcStatus := -1
	if v := resp.Header.Get("Grpc-Status"); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			grpcStatus = n
		}
	}
	return p.RetriableStatus(resp.StatusCode, grpcStatus, resp.Header)
}

// backoff waits before retry n (1-based): a rate-limited answer's reset
// header when the policy names one, else the jittered exponential
// back-off. It returns false when ctx ends first.
func (s *stream) backoff(ctx context.Context, p *route.RetryPolicy, n int, resp *http.Response) bool {
	d := p.Backoff(n, rand.Int64N)
	if resp != nil {
		if rl, ok := rateLimitedDelay(p, resp.Header); ok {
			d = rl
		}
	}
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// rateLimitedDelay reads a reset header (Retry-After and the like) as
// rate_limited_retry_back_off describes.
func rateLimitedDelay(p *route.RetryPolicy, h http.Header) (time.Duration, bool) {
	for _, rh := range p.RateLimitedHeaders {
		v := h.Get(rh.Name)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			continue
		}
		d := time.Duration(n) * time.Second
		if rh.UnixSeconds {
			d = time.Until(time.Unix(n, 0))
		}
		if d < 0 || d > p.RateLimitedMaxDelay {
			continue
		}
		return d, true
	}
	return 0, false
}
