package rbac

import (
	"log/slog"
	"net"
	"net/http"
	"net/netip"

	"github.com/trellis-mesh/trellis/internal/proxy/httpfilter"
	engine "github.com/trellis-mesh/trellis/internal/proxy/rbac"
	"github.com/trellis-mesh/trellis/internal/proxy/tlsx"
)

// grpcPermissionDenied is gRPC's PERMISSION_DENIED status code.
const grpcPermissionDenied = 7

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
		var in engine.Input
		fill(&in, req)
		if c.shadow != nil {
			d := c.shadow.Evaluate(&in)
			c.shadowStats.Count(d.Allowed)
			f.logDecision("shadow rules decision", c.shadow, d, &in)
		}
		if c.rules == nil {
			return next.Serve(req)
		}
		d := c.rules.Evaluate(&in)
		c.rulesStats.Count(d.Allowed)
		if c.rules.Action() == engine.Log && d.Policy != engine.NoPolicy {
			f.logDecision("rules matched (LOG)", c.rules, d, &in)
		}
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

// parseAddr parses "ip:port" or "ip".
func parseAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr()
	}
	a, _ := netip.ParseAddr(s)
	return a
}
