// Package fault is Envoy's fault injection HTTP filter
// (envoy.extensions.filters.http.fault.v3.HTTPFault): it delays and/or
// aborts a share of requests, optionally only those matching headers, at
// most max_active_faults at once, with per-route overrides.
//
// A configured filter is immutable; the count of active faults is shared by
// the requests of its snapshot.
package fault

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellis-mesh/trellis/internal/proxy/httpfilter"
	"github.com/trellis-mesh/trellis/internal/proxy/route"
	"github.com/trellis-mesh/trellis/internal/telemetry/accesslog"
)

// Header names of header-controlled faults, as Envoy names them.
const (
	HeaderDelay     = "X-Envoy-Fault-Delay-Request"
	HeaderAbort     = "X-Envoy-Fault-Abort-Request"
	HeaderAbortGRPC = "X-Envoy-Fault-Abort-Grpc-Request"
)

// Builder builds fault filters.
type Builder struct{}

var _ httpfilter.Builder = Builder{}

// TypeURL implements httpfilter.Builder.
func (Builder) TypeURL() string {
	return "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
}

// Build implements httpfilter.Builder.
func (Builder) Build(name string, a *anypb.Any) (httpfilter.Filter, error) {
	c, err := parse(a)
	if err != nil {
		return nil, err
	}
	return &filter{name: name, cfg: c}, nil
}

// ParseOverride implements httpfilter.Builder: a route's HTTPFault replaces
// the filter's configuration for that route.
func (Builder) ParseOverride(a *anypb.Any) (any, error) { return parse(a) }

// config is a compiled HTTPFault.
type config struct {
	delay       time.Duration
	delayHeader bool
	delayPer    route.Share
	abortStatus int
	abortGRPC   int // -1: none
	abortHeader bool
	abortPer    route.Share
	headers     route.HeaderMatchers
	maxActive   int64 // 0: no limit
	active      atomic.Int64
}

func parse(a *anypb.Any) (*config, error) {
	pb := &faultv3.HTTPFault{}
	if err := a.UnmarshalTo(pb); err != nil {
		return nil, err
	}
	c := &config{abortGRPC: -1}
	var errs []error
	if d := pb.GetDelay(); d != nil {
		switch t := d.GetFaultDelaySecifier().(type) {
		case *faultcommonv3.FaultDelay_FixedDelay:
			c.delay = t.FixedDelay.AsDuration()
		case *faultcommonv3.FaultDelay_HeaderDelay_:
			c.delayHeader = true
		default:
			errs = append(errs, errors.New("delay: one of fixed_delay, header_delay is required"))
		}
		c.delayPer = route.ShareOf(d.GetPercentage())
	}
	if ab := pb.GetAbort(); ab != nil {
		switch t := ab.GetErrorType().(type) {
		case *faultv3.FaultAbort_HttpStatus:
			c.abortStatus = int(t.HttpStatus)
		case *faultv3.FaultAbort_GrpcStatus:
			c.abortGRPC = int(t.GrpcStatus)
			c.abortStatus = http.StatusOK
		case *faultv3.FaultAbort_HeaderAbort_:
			c.abortHeader = true
		default:
			errs = append(errs, errors.New("abort: one of http_status, grpc_status, header_abort is required"))
		}
		c.abortPer = route.ShareOf(ab.GetPercentage())
	}
	hm, err := route.NewHeaderMatchers(pb.GetHeaders())
	if err != nil {
		errs = append(errs, err)
	}
	c.headers = hm
	if m := pb.GetMaxActiveFaults(); m != nil {
		c.maxActive = int64(m.GetValue())
	}
	return c, errors.Join(errs...)
}

type filter struct {
	name string
	cfg  *config
}

func (f *filter) Wrap(next httpfilter.Handler) httpfilter.Handler {
	return httpfilter.HandlerFunc(func(req *httpfilter.Request) error {
		c := f.cfg
		if o, ok := req.Override(f.name).(*config); ok {
			c = o
		}
		if len(c.headers) > 0 && !c.headers.Match(req.R) {
			return next.Serve(req)
		}
		delay, delayOK := c.delayFor(req.R)
		status, grpcStatus, abortOK := c.abortFor(req.R)
		if !delayOK && !abortOK {
			return next.Serve(req)
		}
		if c.maxActive > 0 {
			if c.active.Add(1) > c.maxActive {
				c.active.Add(-1)
				return next.Serve(req)
			}
			defer c.active.Add(-1)
		}
		if delayOK {
			*req.Flags |= accesslog.DelayInjected
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-req.R.Context().Done():
				t.Stop()
				return req.R.Context().Err()
			}
		}
		if abortOK {
			return &httpfilter.LocalReply{Status: status, GRPCStatus: grpcStatus, Flags: accesslog.FaultInjected,
				Reason: "fault_abort", Detail: fmt.Sprintf("fault filter %q aborted the request", f.name)}
		}
		return next.Serve(req)
	})
}

func (c *config) delayFor(r *http.Request) (time.Duration, bool) {
	if c.delay == 0 && !c.delayHeader {
		return 0, false
	}
	if !c.delayPer.Sample() {
		return 0, false
	}
	if !c.delayHeader {
		return c.delay, true
	}
	ms, err := strconv.ParseUint(r.Header.Get(HeaderDelay), 10, 32)
	if err != nil {
		return 0, false
	}
	return time.Duration(ms) * time.Millisecond, true
}

func (c *config) abortFor(r *http.Request) (status, grpcStatus int, ok bool) {
	if c.abortStatus == 0 && !c.abortHeader {
		return 0, 0, false
	}
	if !c.abortPer.Sample() {
		return 0, 0, false
	}
	if !c.abortHeader {
		return c.abortStatus, max(c.abortGRPC, 0), true
	}
	if v := r.Header.Get(HeaderAbortGRPC); v != "" {
		if g, err := strconv.Atoi(v); err == nil && g >= 0 {
			return http.StatusOK, g, true
		}
	}
	if s, err := strconv.Atoi(r.Header.Get(HeaderAbort)); err == nil && s >= 200 && s < 600 {
		return s, 0, true
	}
	return 0, 0, false
}
