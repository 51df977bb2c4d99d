package natsfilter

import (
	"crypto/tls"
	"net"
	"net/netip"
	"strings"

	"github.com/trellis-mesh/trellis/internal/messaging/nats"
)

// peer is who a connection is, for policy: its source address and, on a
// mutual TLS connection, the SPIFFE ID of the client certificate.
type peer struct {
	addr   netip.Addr
	spiffe string
}

// peerOf identifies c. A *tls.Conn has completed its handshake by the time
// any protocol line has been read from it.
func peerOf(c net.Conn) peer {
	var p peer
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		p.addr = ta.AddrPort().Addr().Unmap()
	}
	if tc, ok := c.(interface{ ConnectionState() tls.ConnectionState }); ok {
		p.spiffe = spiffeID(tc.ConnectionState())
	}
	return p
}

// spiffeID returns the spiffe:// URI SAN of the peer's leaf certificate,
// or "".
//
// The certificate is verified: tlsx.ServerConfig asks for client
// certificates only when the chain has a validation context, and then the
// handshake fails unless the certificate verifies against trusted_ca.
func spiffeID(cs tls.ConnectionState) string {
	if !cs.HandshakeComplete || len(cs.PeerCertificates) == 0 {
		return ""
	}
	for _, u := range cs.PeerCertificates[0].URIs {
		if u.Scheme == "spiffe" {
			return u.String()
		}
	}
	return ""
}

func (pr *Principal) matches(p *peer) bool {
	switch {
	case pr.Any:
		return true
	case pr.SPIFFE != "":
		if p.spiffe == "" {
			return false
		}
		if pr.SPIFFEPrefix {
			return strings.HasPrefix(p.spiffe, pr.SPIFFE)
		}
		return p.spiffe == pr.SPIFFE
	default:
		return p.addr.IsValid() && pr.Prefix.Contains(p.addr)
	}
}

// decide returns the action for a publish (publish true) or subscribe on
// subject by p: the first matching rule's, else the default.
func (c *Config) decide(publish bool, subject []byte, p *peer) Action {
	for i := range c.Policies {
		r := &c.Policies[i]
		if publish && !r.Publish || !publish && !r.Subscribe {
			continue
		}
		if !r.matchesSubject(subject) {
			continue
		}
		if len(r.Principals) > 0 {
			ok := false
			for j := range r.Principals {
				if r.Principals[j].matches(p) {
					ok = true
					break
				}
			}
			if !ok {
				continue
			}
		}
		return r.Action
	}
	return c.DefaultAction
}

// audited reports whether an AUDIT rule matches a publish (publish true)
// or subscribe on subject by p.
func (c *Config) audited(publish bool, subject []byte, p *peer) bool {
	for i := range c.Audit {
		if c.Audit[i].matches(publish, subject, p) {
			return true
		}
	}
	return false
}

func (r *Rule) matches(publish bool, subject []byte, p *peer) bool {
	if publish && !r.Publish || !publish && !r.Subscribe || !r.matchesSubject(subject) {
		return false
	}
	if len(r.Principals) == 0 {
		return true
	}
	for j := range r.Principals {
		if r.Principals[j].matches(p) {
			return true
		}
	}
	return false
}

// matchesSubject: an ALLOW rule matches a subject within one of its
// patterns; DENY and AUDIT rules (what a DENY would refuse) one that
// overlaps one.
func (r *Rule) matchesSubject(subject []byte) bool {
	for _, pat := range r.Subjects {
		if r.Action != Allow && nats.Overlap(pat, subject) || r.Action == Allow && nats.Subset(pat, subject) {
			return true
		}
	}
	return false
}

// enforcing reports whether decisions depend on anything at all (not with no
// policies and a default of allow: every operation passes).
func (c *Config) enforcing() bool {
	return len(c.Policies) > 0 || len(c.Audit) > 0 || c.DefaultAction == Deny
}
