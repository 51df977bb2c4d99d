package rbac

import (
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"

	"github.com/trellis-mesh/trellis/internal/proxy/httpfilter"
	engine "github.com/trellis-mesh/trellis/internal/proxy/rbac"
	"github.com/trellis-mesh/trellis/internal/proxy/tlsx"
)

// grpcPermissionDenied is gRPC's PERMISSION_DENIED status code.
const grpcPermissionDenied = 7

// inputPool keeps evaluation inputs, which would otherwise escape to the
// heap on every request (rules are interfaces).
var inputPool = sync.Pool{New: func() any { return new(engine.Input) }}

type filter struct {
	name string
	cfg  *config
	log  *slog.Logger
}

func (f *filter) Wrap(next httpfilter.Handler) httpfilter.Handler {
	return httpfilter.HandlerFunc(func(req *httpfilter.Request) error {
		c := f.cfg
		if o, ok := req.Override(f.name).(*config); ok {
			c = o
		}
		if c.disabled || c.rules == nil && c.shadow == nil {
			return next.Serve(req)
		}
		in := inputPool.Get().(*engine.Input)
		fill(in, req)
		d := engine.Decision{Allowed: true}
		if c.shadow != nil {
			sd := c.shadow.Evaluate(in)
			c.shadowStats.Count(sd.Allowed)
			f.logDecision("shadow rules decision", c.shadow, sd, in)
		}
		if c.rules != nil {
			d = c.rules.Evaluate(in)
			c.rulesStats.Count(d.Allowed)
			if c.rules.Action() == engine.Log && d.Policy != engine.NoPolicy {
				f.logDecision("rules matched (LOG)", c.rules, d, in)
			}
		}
		*in = engine.Input{}
		inputPool.Put(in)
		if d.Allowed {
			return next.Serve(req)
		}
		return &httpfilter.LocalReply{
			Status:     http.StatusForbidden,
			GRPCStatus: grpcPermissionDenied,
			Reason:     c.rules.DenyDetails(d.Policy),
			Detail:     "RBAC: access denied",
		}
	})
}

// logDecision writes a debug line for a decision that is not enforced
// (the access log has no field for dynamic metadata, where Envoy puts
// shadow_effective_policy_id and shadow_engine_result).
func (f *filter) logDecision(msg string, e *engine.Engine, d engine.Decision, in *engine.Input) {
	if !f.log.Enabled(in.Request.Context(), slog.LevelDebug) {
		return
	}
	result := "allowed"
	if !d.Allowed {
		result = "denied"
	}
	f.log.Debug(msg, "action", e.Action().String(), "result", result, "policy", e.PolicyName(d.Policy),
		"method", in.Request.Method, "authority", in.Request.Host, "path", in.Path,
		"remote", in.Remote.String(), "request_id", in.Request.Header.Get("X-Request-Id"))
}

// fill sets in from the request and its connection.
func fill(in *engine.Input, req *httpfilter.Request) {
	r := req.R
	in.Request = r
	in.Path = r.URL.EscapedPath()
	in.DirectRemote = parseAddr(r.RemoteAddr)
	in.Remote = in.DirectRemote
	if req.RemoteAddr != "" {
		if a := parseAddr(req.RemoteAddr); a.IsValid() {
			in.Remote = a
		}
	}
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr); ok {
		in.Local = a.AddrPort()
	}
	if r.TLS != nil {
		in.ServerName = r.TLS.ServerName
		in.Peer = tlsx.VerifiedPeer(r.TLS)
	}
}

// parseAddr parses "ip:port", "[ip]:port" or "ip", trying the form that
// fits first (a failed parse allocates its error).
func parseAddr(s string) netip.Addr {
	if i := strings.LastIndexByte(s, ':'); i >= 0 && (s[0] == '[' || strings.IndexByte(s, ':') == i) {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			return ap.Addr()
		}
	}
	a, _ := netip.ParseAddr(s)
	return a
}
