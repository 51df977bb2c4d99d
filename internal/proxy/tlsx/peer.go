package tlsx

import (
	"crypto/tls"
	"crypto/x509"
)

// VerifiedPeer returns the leaf certificate the peer of a connection made
// with ServerConfig presented, or nil. It is verified: ServerConfig asks
// for client certificates only with a validation context, and then the
// handshake fails unless the certificate verifies against trusted_ca (and
// the SAN matchers). cs may be nil (no TLS).
func VerifiedPeer(cs *tls.ConnectionState) *x509.Certificate {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return nil
	}
	return cs.PeerCertificates[0]
}
