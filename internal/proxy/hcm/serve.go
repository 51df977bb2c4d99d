package hcm

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/httpfilter"
	"github.com/trellis-mesh/trellis/internal/proxy/route"
	"github.com/trellis-mesh/trellis/internal/telemetry/accesslog"
)

// serve handles one downstream request on configuration c.
func (c *Config) serve(w http.ResponseWriter, r *http.Request) {
	s := streamPool.Get().(*stream)
	s.cfg, s.start, s.w, s.r = c, time.Now(), w, r
	s.reqBody = noBody{}
	c.Stats.Active.Inc()
	defer func() {
		c.Stats.Active.Dec()
		s.finish()
		s.reset()
		streamPool.Put(s)
	}()

	s.method, s.authority, s.userAgent = r.Method, r.Host, r.Header.Get("User-Agent")
	s.path = r.RequestURI
	if s.path == "" {
		s.path = r.URL.RequestURI()
	}
	if t := c.Tap; t != nil {
		if n := t.BodyLimit(c.inbound, s.method, s.authority, s.path); n > 0 {
			s.captureBodies(n)
		}
	}
	s.prepareHeaders()

	path, ok := s.normalizePath()
	if !ok {
		return
	}
	vh, rt := c.Routes.Match(r, path, &c.RouteOpts)
	s.vhost, s.route = vh, rt
	if c.Tracer != nil {
		s.startTrace(rt)
	}
	if rt == nil {
		s.localReply(http.StatusNotFound, accesslog.NoRoute, ReasonNoRoute,
			fmt.Sprintf("no route matched: listener %q, route config %q, host %q, path %q", c.Listener, c.Routes.Name, r.Host, path))
		return
	}
	s.path2 = path
	if c.chain != nil {
		s.freq = httpfilter.Request{W: w, R: r, Route: rt, RemoteAddr: s.remote, Flags: &s.flags, State: s}
		if err := c.chain.Serve(&s.freq); err != nil {
			s.filterError(err)
		}
		return
	}
	s.dispatch(rt)
}

// routerHandler is the terminal handler of the filter chain: the router.
func routerHandler(req *httpfilter.Request) error {
	req.State.(*stream).dispatch(req.Route)
	return nil
}

// dispatch runs the matched route's action.
func (s *stream) dispatch(rt *route.Route) {
	switch rt.Action {
	case route.DirectResponse:
		s.direct(rt)
	case route.Redirect:
		s.redirect(rt, s.path2)
	default:
		s.forward(rt, s.path2)
	}
}

// filterError answers a request a filter refused.
func (s *stream) filterError(err error) {
	var lr *httpfilter.LocalReply
	switch {
	case errors.As(err, &lr):
		s.replyHeader = lr.Header
		s.localReplyGRPC(lr.Status, lr.GRPCStatus, lr.Flags, lr.Reason, lr.Detail)
	case s.r.Context().Err() != nil:
		s.flags |= accesslog.DownstreamConnectionTermination
	default:
		s.localReply(http.StatusInternalServerError, 0, "filter_error", err.Error())
	}
}

// prepareHeaders applies the connection manager's request header rules:
// hop-by-hop removal, x-forwarded-for/-proto, x-request-id and via.
func (s *stream) prepareHeaders() {
	c, r := s.cfg, s.r
	h := r.Header
	s.xff = h.Get("X-Forwarded-For")
	peer := r.RemoteAddr
	peerIP, _, err := net.SplitHostPort(peer)
	if err != nil {
		peerIP = peer
	}
	scheme := valHTTP
	if r.TLS != nil {
		scheme = valHTTPS
	}
	s.remote = peer
	internal := true
	if c.UseRemoteAddress {
		if ip, err := netip.ParseAddr(peerIP); err == nil {
			internal = ip.IsLoopback() || ip.IsPrivate()
		}
		if !c.SkipXFFAppend {
			if s.xff == "" {
				h["X-Forwarded-For"] = []string{peerIP}
			} else {
				h["X-Forwarded-For"] = []string{s.xff + ", " + peerIP}
			}
		}
		h["X-Forwarded-Proto"] = scheme
	} else {
		if s.xff != "" {
			if ip := trustedXFF(s.xff, c.XFFTrustedHops); ip != "" {
				s.remote = ip
			}
		}
		if _, ok := h["X-Forwarded-Proto"]; !ok {
			h["X-Forwarded-Proto"] = scheme
		}
	}
	removeHopByHop(h, isUpgrade(r))
	if c.GenerateRequestID {
		id := h.Get("X-Request-Id")
		if id == "" || (c.UseRemoteAddress && !internal && !c.PreserveExternalRequestID) {
			id = newRequestID()
			h["X-Request-Id"] = []string{id}
		}
		s.requestID = id
	} else {
		s.requestID = h.Get("X-Request-Id")
	}
	if c.Via != "" {
		h["Via"] = append(h["Via"], c.Via)
	}
	s.vars = route.Vars{Request: r, RemoteAddr: peer, LocalAddr: localAddr(r)}
}

// Header values shared by every request. Header maps only ever replace or
// append to a value slice (append to a full slice copies), so sharing these
// read-only slices is safe.
var (
	valHTTP  = []string{"http"}
	valHTTPS = []string{"https"}
	valText  = []string{"text/plain"}
)

// trustedXFF returns the client address from X-Forwarded-For, skipping
// hops trusted hops from the right (Envoy's xff_num_trusted_hops).
func trustedXFF(xff string, hops int) string {
	parts := strings.Split(xff, ",")
	i := len(parts) - 1 - hops
	if i < 0 {
		return ""
	}
	return strings.TrimSpace(parts[i])
}

// hopHeaders are removed when forwarding (RFC 9110 §7.6.1).
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Trailer", "Transfer-Encoding", "Upgrade",
}

func removeHopByHop(h http.Header, keepUpgrade bool) {
	if c := h["Connection"]; len(c) > 0 {
		for _, v := range c {
			for _, f := range strings.Split(v, ",") {
				f = http.CanonicalHeaderKey(strings.TrimSpace(f))
				if f == "Upgrade" && keepUpgrade {
					continue
				}
				delete(h, f)
			}
		}
	}
	for _, k := range hopHeaders {
		if keepUpgrade && (k == "Upgrade" || k == "Connection") {
			continue
		}
		delete(h, k)
	}
	// TE is hop-by-hop, but "trailers" must reach gRPC servers.
	if te, ok := h["Te"]; ok {
		if len(te) == 1 && strings.EqualFold(te[0], "trailers") {
			return
		}
		delete(h, "Te")
	}
}

func isUpgrade(r *http.Request) bool {
	if r.ProtoMajor != 1 {
		return false
	}
	if _, ok := r.Header["Upgrade"]; !ok {
		return false
	}
	for _, v := range r.Header["Connection"] {
		for _, f := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), "upgrade") {
				return true
			}
		}
	}
	return false
}

const hexDigits = "0123456789abcdef"

// newRequestID returns a random UUID (version 4) for x-request-id.
func newRequestID() string {
	var b [36]byte
	hi, lo := rand.Uint64(), rand.Uint64()
	hi = hi&^(0xf<<12) | 4<<12         // version 4
	lo = lo&^(0x3<<62) | uint64(2)<<62 // variant 10
	var raw [16]byte
	for i := 0; i < 8; i++ {
		raw[i] = byte(hi >> (56 - 8*i))
		raw[8+i] = byte(lo >> (56 - 8*i))
	}
	j := 0
	for i, x := range raw {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j], b[j+1] = hexDigits[x>>4], hexDigits[x&0xf]
		j += 2
	}
	return string(b[:])
}

func (s *stream) direct(rt *route.Route) {
	h := s.w.Header()
	s.applyResponseMutations(h)
	s.responseHook(h)
	s.serverHeader(h)
	if len(rt.Body) > 0 {
		if _, ok := h["Content-Type"]; !ok {
			h["Content-Type"] = valText
		}
	}
	s.status, s.wroteHeader = rt.Status, true
	s.w.WriteHeader(rt.Status)
	n, _ := s.w.Write(rt.Body)
	s.bytesSent += int64(n)
	if s.rspCapture != nil {
		_, _ = s.rspCapture.Write(rt.Body[:n])
	}
}

func (s *stream) redirect(rt *route.Route, path string) {
	h := s.w.Header()
	h.Set("Location", rt.Redir.Location(s.r, rt, path))
	s.applyResponseMutations(h)
	s.responseHook(h)
	s.serverHeader(h)
	s.status, s.wroteHeader = rt.Redir.Code, true
	s.w.WriteHeader(rt.Redir.Code)
}

// applyRequestMutations applies route, virtual-host, then route-table
// request header mutations (Envoy's order: the least specific level is
// applied last and wins for overwrites).
func (s *stream) applyRequestMutations(h http.Header) {
	s.route.Headers.ApplyRequest(h, &s.vars)
	if s.vhost != nil {
		s.vhost.Headers.ApplyRequest(h, &s.vars)
	}
	s.cfg.Routes.Headers.ApplyRequest(h, &s.vars)
}

func (s *stream) applyResponseMutations(h http.Header) {
	if s.route != nil {
		s.route.Headers.ApplyResponse(h, &s.vars)
	}
	if s.vhost != nil {
		s.vhost.Headers.ApplyResponse(h, &s.vars)
	}
	s.cfg.Routes.Headers.ApplyResponse(h, &s.vars)
}

// responseHook lets filters see the response headers before they are sent.
func (s *stream) responseHook(h http.Header) {
	if s.freq.OnResponse != nil {
		s.freq.OnResponse(h)
	}
}
