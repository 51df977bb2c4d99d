package hcm

import (
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/trellis-mesh/trellis/internal/telemetry/accesslog"
)

// Reason codes carried in x-trellis-reason on responses the proxy makes
// itself. They are stable: users match on them.
const (
	ReasonNoRoute           = "no_route"
	ReasonClusterNotFound   = "cluster_not_found"
	ReasonNoHealthyUpstream = "no_healthy_upstream"
	ReasonConnectFailure    = "upstream_connect_failure"
	ReasonUpstreamReset     = "upstream_reset"
	ReasonUpstreamTimeout   = "upstream_timeout"
	ReasonPerTryTimeout     = "upstream_per_try_timeout"
	ReasonMaxDuration       = "max_stream_duration"
	ReasonOverflow          = "upstream_overflow"
	// ReasonBodyTooLargeToRetry is logged when a request matched the retry
	// policy but its body exceeded the retry buffer.
	ReasonBodyTooLargeToRetry = "retry_body_too_large"
	ReasonStreamIdle          = "stream_idle_timeout"
	ReasonUpgradeRejected     = "upgrade_not_allowed"
	ReasonUpgradeFailed       = "upgrade_failed"
	ReasonDirectResponse      = "direct_response"
	ReasonRedirect            = "redirect"
)

// ReasonHeader is the response header naming why the proxy answered.
const ReasonHeader = "X-Trellis-Reason"

func isGRPC(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return strings.HasPrefix(ct, "application/grpc")
}

// grpcStatus maps an HTTP status to a gRPC status code as Envoy does
// (https://github.com/grpc/grpc/blob/master/doc/http-grpc-status-mapping.md),
// except that 504 maps to DEADLINE_EXCEEDED.
func grpcStatus(code int) int {
	switch code {
	case http.StatusBadRequest:
		return 13 // INTERNAL
	case http.StatusUnauthorized:
		return 16 // UNAUTHENTICATED
	case http.StatusForbidden:
		return 7 // PERMISSION_DENIED
	case http.StatusNotFound:
		return 12 // UNIMPLEMENTED
	case http.StatusGatewayTimeout:
		return 4 // DEADLINE_EXCEEDED
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable:
		return 14 // UNAVAILABLE
	}
	return 2 // UNKNOWN
}

// localReply answers the request from the proxy: status, the reason header,
// and a one-line explanation. gRPC requests get a trailers-only gRPC
// response with the mapped grpc-status and the explanation as grpc-message.
func (s *stream) localReply(code int, flag accesslog.Flags, reason, detail string) {
	s.localReplyGRPC(code, 0, flag, reason, detail)
}

// localReplyGRPC is localReply with an explicit gRPC status for gRPC
// requests (0: mapped from code).
func (s *stream) localReplyGRPC(code, grpcCode int, flag accesslog.Flags, reason, detail string) {
	s.flags |= flag
	s.reason = reason
	if s.wroteHeader {
		return
	}
	h := s.w.Header()
	clear(h)
	for k, v := range s.replyHeader {
		h[k] = v
	}
	h.Set(ReasonHeader, reason)
	if s.requestID != "" {
		h.Set("X-Request-Id", s.requestID)
	}
	s.serverHeader(h)
	s.responseHook(h)
	if isGRPC(s.r) {
		h.Set("Content-Type", "application/grpc")
		if grpcCode == 0 {
			grpcCode = grpcStatus(code)
		}
		h.Set("Grpc-Status", strconv.Itoa(grpcCode))
		h.Set("Grpc-Message", url.PathEscape(detail))
		s.status = http.StatusOK
		s.wroteHeader = true
		s.w.WriteHeader(http.StatusOK)
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(detail)+1))
	s.status = code
	s.wroteHeader = true
	s.w.WriteHeader(code)
	body := append([]byte(detail), '\n')
	n, _ := s.w.Write(body)
	s.bytesSent += int64(n)
	if s.rspCapture != nil {
		_, _ = s.rspCapture.Write(body[:n])
	}
}

func (s *stream) serverHeader(h http.Header) {
	switch s.cfg.ServerHeader {
	case hcmv3.HttpConnectionManager_OVERWRITE:
		h["Server"] = s.cfg.serverValue
	case hcmv3.HttpConnectionManager_APPEND_IF_ABSENT:
		if _, ok := h["Server"]; !ok {
			h["Server"] = s.cfg.serverValue
		}
	}
}
