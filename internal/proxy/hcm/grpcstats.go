package hcm

import (
	"net/http"
	"strconv"
)

// grpcStatus returns the grpc-status the downstream was sent: from the
// trailers (copied into the header map with http.TrailerPrefix), or from
// the headers of a trailers-only response (local replies too). A gRPC
// response without one ended abnormally: UNKNOWN (2).
func (s *stream) grpcStatus() int {
	h := s.w.Header()
	var v string
	if vv := h[http.TrailerPrefix+"Grpc-Status"]; len(vv) > 0 { // set as is, not canonicalised
		v = vv[0]
	} else {
		v = h.Get("Grpc-Status")
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 && n <= 16 {
		return n
	}
	return 2
}
