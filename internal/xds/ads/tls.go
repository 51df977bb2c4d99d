package ads

import (
	"crypto/tls"
	"crypto/x509"
	"errors"

	"google.golang.org/grpc/credentials"
)

// TLSCredentials returns transport credentials for the connections to the
// control plane: its serving certificate must chain to the CA certificates
// in caPEM (the control plane's ca.crt) and name the host dialled. Once
// identity returns a certificate (the proxy's mesh certificate, from the
// rotator), every new connection presents it as the client certificate,
// which the control plane checks against the node the proxy claims to be;
// before that (identity nil, or returning nil) none is presented, which
// is enough for the certificate service. Client.Run dials again when the
// control plane refuses a stream for want of a certificate.
func TLSCredentials(caPEM []byte, identity func() *tls.Certificate) (credentials.TransportCredentials, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("ads: control-plane CA: no PEM certificate in it")
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if identity != nil {
				if cert := identity(); cert != nil {
					return cert, nil
				}
			}
			return &tls.Certificate{}, nil // none yet
		},
	}
	return credentials.NewTLS(cfg), nil
}
