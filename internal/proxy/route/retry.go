package route

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// RetryOn is a set of Envoy retry conditions (x-envoy-retry-on and
// x-envoy-retry-grpc-on values).
type RetryOn uint32

// The retry conditions.
const (
	Retry5xx RetryOn = 1 << iota
	RetryGatewayError
	RetryReset
	RetryConnectFailure
	RetryRetriable4xx
	RetryRefusedStream
	RetryRetriableStatusCodes
	RetryRetriableHeaders
	RetryGRPCCancelled
	RetryGRPCDeadlineExceeded
	RetryGRPCInternal
	RetryGRPCResourceExhausted
	RetryGRPCUnavailable
)

var retryOnNames = map[string]RetryOn{
	"5xx": Retry5xx, "gateway-error": RetryGatewayError, "reset": RetryReset,
	"connect-failure": RetryConnectFailure, "retriable-4xx": RetryRetriable4xx,
	"refused-stream": RetryRefusedStream, "retriable-status-codes": RetryRetriableStatusCodes,
	"retriable-headers": RetryRetriableHeaders, "cancelled": RetryGRPCCancelled,
	"deadline-exceeded": RetryGRPCDeadlineExceeded, "internal": RetryGRPCInternal,
	"resource-exhausted": RetryGRPCResourceExhausted, "unavailable": RetryGRPCUnavailable,
}

// Envoy's retry defaults.
const (
	DefaultRetryBaseInterval = 25 * time.Millisecond
	defaultRetryMaxFactor    = 10
	// DefaultRetryBufferLimit is how much of a request body is kept so it
	// can be sent again (Envoy: per_request_buffer_limit_bytes, whose
	// default is the listener's connection buffer limit, 1 MiB).
	DefaultRetryBufferLimit = 1 << 20
)

// RetryPolicy is a compiled RetryPolicy.
type RetryPolicy struct {
	On                  RetryOn
	NumRetries          int
	PerTryTimeout       time.Duration
	BaseInterval        time.Duration
	MaxInterval         time.Duration
	StatusCodes         map[int]bool
	Headers             []headerMatch // matched against the response
	PreviousHosts       bool
	HostSelectAttempts  int
	RateLimitedHeaders  []RateLimitedHeader
	RateLimitedMaxDelay time.Duration
	BufferLimit         int64
}

// RateLimitedHeader is one rate_limited_retry_back_off.reset_headers entry.
type RateLimitedHeader struct {
	Name        string // canonical
	UnixSeconds bool   // format UNIX_TIMESTAMP; otherwise SECONDS
}

func compileRetry(rp *routev3.RetryPolicy) (*RetryPolicy, error) {
	p := &RetryPolicy{NumRetries: 1, BaseInterval: DefaultRetryBaseInterval, BufferLimit: DefaultRetryBufferLimit}
	var errs []error
	for _, cond := range strings.Split(rp.GetRetryOn(), ",") {
		cond = strings.TrimSpace(cond)
		if cond == "" {
			continue
		}
		bit, ok := retryOnNames[cond]
		if !ok {
			errs = append(errs, fmt.Errorf("retry_on: condition %q not supported", cond))
			continue
		}
		p.On |= bit
	}
	if n := rp.GetNumRetries(); n != nil {
		p.NumRetries = int(n.GetValue())
	}
	p.PerTryTimeout = rp.GetPerTryTimeout().AsDuration()
	if bo := rp.GetRetryBackOff(); bo != nil {
		if bo.GetBaseInterval().AsDuration() <= 0 {
			errs = append(errs, errors.New("retry_back_off.base_interval: must be > 0"))
		}
		p.BaseInterval = bo.GetBaseInterval().AsDuration()
		if m := bo.GetMaxInterval(); m != nil {
			p.MaxInterval = m.AsDuration()
			if p.MaxInterval < p.BaseInterval {
				errs = append(errs, errors.New("retry_back_off.max_interval: must be >= base_interval"))
			}
		}
	}
	if p.MaxInterval == 0 {
		p.MaxInterval = defaultRetryMaxFactor * p.BaseInterval
	}
	for _, c := range rp.GetRetriableStatusCodes() {
		if p.StatusCodes == nil {
			p.StatusCodes = map[int]bool{}
		}
		p.StatusCodes[int(c)] = true
	}
	for i, h := range rp.GetRetriableHeaders() {
		hm, err := compileHeaderMatch(h)
		if err != nil {
			errs = append(errs, fmt.Errorf("retriable_headers[%d]: %w", i, err))
			continue
		}
		p.Headers = append(p.Headers, hm)
	}
	for i, pred := range rp.GetRetryHostPredicate() {
		if pred.GetName() != "envoy.retry_host_predicates.previous_hosts" {
			errs = append(errs, fmt.Errorf("retry_host_predicate[%d].name: %q not supported (only envoy.retry_host_predicates.previous_hosts)", i, pred.GetName()))
			continue
		}
		p.PreviousHosts = true
	}
	p.HostSelectAttempts = int(rp.GetHostSelectionRetryMaxAttempts())
	if rl := rp.GetRateLimitedRetryBackOff(); rl != nil {
		for _, h := range rl.GetResetHeaders() {
			p.RateLimitedHeaders = append(p.RateLimitedHeaders, RateLimitedHeader{
				Name:        http.CanonicalHeaderKey(h.GetName()),
				UnixSeconds: h.GetFormat() == routev3.RetryPolicy_UNIX_TIMESTAMP,
			})
		}
		p.RateLimitedMaxDelay = 300 * time.Second
		if m := rl.GetMaxInterval(); m != nil {
			p.RateLimitedMaxDelay = m.AsDuration()
		}
	}
	return p, errors.Join(errs...)
}

// RetriableStatus reports whether an upstream answer with code (and, for
// gRPC, grpcStatus >= 0) and response headers h should be retried.
func (p *RetryPolicy) RetriableStatus(code int, grpcStatus int, h http.Header) bool {
	switch {
	case p.On&Retry5xx != 0 && code >= 500:
		return true
	case p.On&RetryGatewayError != 0 && (code == 502 || code == 503 || code == 504):
		return true
	case p.On&RetryRetriable4xx != 0 && code == http.StatusConflict:
		return true
	case p.On&RetryRetriableStatusCodes != 0 && p.StatusCodes[code]:
		return true
	}
	switch grpcStatus {
	case 1:
		return p.On&RetryGRPCCancelled != 0
	case 4:
		return p.On&RetryGRPCDeadlineExceeded != 0
	case 8:
		return p.On&RetryGRPCResourceExhausted != 0
	case 13:
		return p.On&RetryGRPCInternal != 0
	case 14:
		return p.On&RetryGRPCUnavailable != 0
	}
	if p.On&RetryRetriableHeaders != 0 {
		for i := range p.Headers {
			hm := &p.Headers[i]
			if v, ok := h[hm.name]; ok {
				val := strings.Join(v, ",")
				var m bool
				if hm.present != nil {
					m = *hm.present
				} else {
					m = hm.str.Match(val)
				}
				if m != hm.invert {
					return true
				}
			}
		}
	}
	return false
}

// Backoff returns the delay before retry number n (1-based): Envoy's fully
// jittered exponential back-off, a random time in [0, min(max, base×2^(n-1))).
func (p *RetryPolicy) Backoff(n int, random func(int64) int64) time.Duration {
	ceil := p.BaseInterval
	for i := 1; i < n && ceil < p.MaxInterval; i++ {
		ceil *= 2
	}
	ceil = min(ceil, p.MaxInterval)
	if ceil <= 0 {
		return 0
	}
	return time.Duration(random(int64(ceil)))
}
