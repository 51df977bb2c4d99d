package listener

import (
	"crypto/tls"
	"net"
	"time"

	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellis-mesh/trellis/internal/proxy/netrbac"
	"github.com/trellis-mesh/trellis/internal/proxy/rbac"
	"github.com/trellis-mesh/trellis/internal/proxy/tlsx"
)

// rbacHandshakeTimeout bounds the TLS handshake a TLS chain with RBAC
// filters completes before evaluating them (as the connection manager
// bounds its own).
const rbacHandshakeTimeout = 15 * time.Second

// buildRBAC adds a network RBAC filter to c if a is one; ok reports
// whether it was.
func buildRBAC(c *Chain, a *anypb.Any, d Deps) (ok bool, err error) {
	pb := &netrbacv3.RBAC{}
	if !a.MessageIs(pb) {
		return false, nil
	}
	if err := a.UnmarshalTo(pb); err != nil {
		return true, err
	}
	f, err := netrbac.New(pb, d.Metrics)
	if err != nil {
		return true, err
	}
	c.rbac = append(c.rbac, f)
	return true, nil
}

// allowRBAC evaluates the chain's RBAC filters on conn. On a TLS chain
// (conn is the *tls.Conn) it first completes the handshake, so that
// authenticated principals see the verified peer certificate; sni is the
// TLS inspector's server name for chains that do not terminate TLS.
func (a *active) allowRBAC(m *Manager, chain *Chain, conn net.Conn, sni string) bool {
	in := rbac.Input{ServerName: sni}
	if ra, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		in.DirectRemote = ra.AddrPort().Addr()
		in.Remote = in.DirectRemote
	}
	if la, ok := conn.LocalAddr().(*net.TCPAddr); ok {
		in.Local = la.AddrPort()
	}
	if tc, ok := conn.(*tls.Conn); ok {
		_ = tc.SetDeadline(time.Now().Add(rbacHandshakeTimeout))
		err := tc.Handshake()
		_ = tc.SetDeadline(time.Time{})
		if err != nil {
			m.log.Debug("tls handshake before rbac failed", "listener", a.name, "remote", conn.RemoteAddr().String(), "error", err)
			return false
		}
		st := tc.ConnectionState()
		in.ServerName = st.ServerName
		in.Peer = tlsx.VerifiedPeer(&st)
	}
	for _, f := range chain.rbac {
		if !f.Allow(&in, m.log.With("listener", a.name)) {
			return false
		}
	}
	return true
}
