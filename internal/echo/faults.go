package echo

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// pathFaultsPrefix starts the paths of the instance fault API.
const pathFaultsPrefix = "/_echo/"

// Faults is instance-level misbehaviour: unlike a request's controls, it
// applies to every request the server gets (HTTP, gRPC and /healthz; not
// /echo/stats or the /_echo/ API itself) until changed, so a test can make
// one instance of several sick and then well again without restarting it.
// The zero value is a healthy server.
type Faults struct {
	// FailRatio is the share of requests (0–1) answered FailStatus (gRPC:
	// UNAVAILABLE) instead.
	FailRatio float64
	// FailStatus is the status of failed requests; 0 means 503.
	FailStatus int
	// Delay is added before every answer.
	Delay time.Duration
	// ResetRatio is the share of requests (0–1) that get no answer: HTTP/1
	// connections are closed with a TCP RST, HTTP/2 streams are reset.
	ResetRatio float64
	// Hang holds every request without an answer until the faults are
	// changed or the client gives up.
	Hang bool
}

// faultState is one immutable Faults value with the channel that releases
// the requests it holds (Hang).
type faultState struct {
	f       Faults
	release chan struct{}
}

// SetFaults replaces the server's instance faults; requests held by a
// previous Hang are released. The zero Faults makes the server healthy.
func (s *Server) SetFaults(f Faults) error {
	if f.FailRatio < 0 || f.FailRatio > 1 {
		return fmt.Errorf("fail ratio %v: must be within 0 and 1", f.FailRatio)
	}
	if f.ResetRatio < 0 || f.ResetRatio > 1 {
		return fmt.Errorf("reset ratio %v: must be within 0 and 1", f.ResetRatio)
	}
	if f.FailStatus == 0 {
		f.FailStatus = http.StatusServiceUnavailable
	}
	if f.FailStatus < 200 || f.FailStatus > 599 {
		return fmt.Errorf("fail status %d: must be within 200 and 599", f.FailStatus)
	}
	if f.Delay < 0 {
		return fmt.Errorf("delay %v: must not be negative", f.Delay)
	}
	s.faultsMu.Lock()
	defer s.faultsMu.Unlock()
	var next *faultState
	if f != (Faults{FailStatus: http.StatusServiceUnavailable}) {
		next = &faultState{f: f}
		if f.Hang {
			next.release = make(chan struct{})
		}
	}
	if prev := s.faults.Swap(next); prev != nil && prev.release != nil {
		close(prev.release)
	}
	return nil
}

// Faults returns the server's instance faults.
func (s *Server) Faults() Faults {
	if st := s.faults.Load(); st != nil {
		return st.f
	}
	return Faults{FailStatus: http.StatusServiceUnavailable}
}

// injectFaults applies the instance faults to one request. It reports
// whether the request should still be served normally.
func (st *faultState) inject(w http.ResponseWriter, r *http.Request, grpc bool) bool {
	f := &st.f
	if st.release != nil {
		select {
		case <-st.release:
		case <-r.Context().Done():
			return false
		}
	}
	if f.Delay > 0 && !sleep(r.Context(), f.Delay) {
		return false
	}
	if hit(f.ResetRatio) {
		abort(w, r)
	}
	if hit(f.FailRatio) {
		if grpc {
			// A Trailers-Only response: the status in the headers.
			w.Header().Set(hdrContentType, "application/grpc")
			w.Header().Set("Grpc-Status", "14")
			w.Header().Set("Grpc-Message", "echo: injected failure")
			w.WriteHeader(http.StatusOK)
			return false
		}
		w.Header()[hdrContentType] = ctText
		w.WriteHeader(f.FailStatus)
		io.WriteString(w, "echo: injected failure\n")
		return false
	}
	return true
}

// faultsJSON is the JSON form of Faults in the /_echo/ API.
type faultsJSON struct {
	FailRatio  float64 `json:"fail_ratio"`
	FailStatus int     `json:"fail_status"`
	Delay      string  `json:"delay"`
	ResetRatio float64 `json:"reset_ratio"`
	Hang       bool    `json:"hang"`
}

// serveFaults is the instance fault API:
//
//	GET  /_echo/faults                    the current faults
//	POST /_echo/fail?ratio=0.5&status=503 fail a share of requests (ratio default 1)
//	POST /_echo/slow?delay=2s             delay every request
//	POST /_echo/reset?ratio=1             reset a share of requests (ratio default 1)
//	POST /_echo/hang                      hold every request until /_echo/recover
//	POST /_echo/recover                   clear every fault, release held requests
//
// Each POST changes only its own fault and answers the resulting faults.
func (s *Server) serveFaults(w http.ResponseWriter, r *http.Request) {
	op := strings.TrimPrefix(r.URL.Path, pathFaultsPrefix)
	if op != "faults" && r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "echo: "+r.URL.Path+" takes POST", http.StatusMethodNotAllowed)
		return
	}
	f := s.Faults()
	q := r.URL.Query()
	ratio := func() (float64, error) {
		v := q.Get("ratio")
		if v == "" {
			return 1, nil
		}
		return strconv.ParseFloat(v, 64)
	}
	var err error
	switch op {
	case "faults":
	case "fail":
		if f.FailRatio, err = ratio(); err == nil && q.Get("status") != "" {
			f.FailStatus, err = strconv.Atoi(q.Get("status"))
		}
	case "slow":
		f.Delay, err = time.ParseDuration(q.Get("delay"))
	case "reset":
		f.ResetRatio, err = ratio()
	case "hang":
		f.Hang = true
	case "recover":
		f = Faults{}
	default:
		http.Error(w, "echo: no such fault API path "+r.URL.Path, http.StatusNotFound)
		return
	}
	if err == nil && op != "faults" {
		err = s.SetFaults(f)
	}
	if err != nil {
		http.Error(w, "echo: "+op+": "+err.Error(), http.StatusBadRequest)
		return
	}
	f = s.Faults()
	w.Header()[hdrContentType] = ctJSON
	json.NewEncoder(w).Encode(faultsJSON{FailRatio: f.FailRatio, FailStatus: f.FailStatus, Delay: f.Delay.String(),
		ResetRatio: f.ResetRatio, Hang: f.Hang})
}
