package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// tlsConfig returns the TLS configuration verifying the server with the
// configured CA.
func (c Config) tlsConfig() (*tls.Config, error) {
	data := []byte(c.CA)
	if c.CAFile != "" {
		var err error
		if data, err = os.ReadFile(c.CAFile); err != nil {
			return nil, fmt.Errorf("control-plane CA: %w", err)
		}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("control-plane CA %s: no PEM certificate in it", c.caSource())
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}, nil
}

// caSource names where the CA comes from, for errors.
func (c Config) caSource() string {
	switch {
	case c.CAFile != "":
		return c.CAFile
	case c.CA != "":
		return "(inline ca of the client config)"
	}
	return "(the system's roots)"
}

// connError explains a failed request; a server certificate the CA does
// not vouch for says which CA was used and how to choose another.
func (c *Client) connError(err error) error {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var ver *tls.CertificateVerificationError
	switch {
	case errors.As(err, &unknown):
		return fmt.Errorf("control plane at %s: its certificate is not signed by the CA %s (set --ca-file, TRELLIS_CA_FILE or caFile in the client config to the control plane's ca.crt): %w", c.base.Host, c.caFrom, err)
	case errors.As(err, &host):
		return fmt.Errorf("control plane at %s: its certificate is not valid for %q (add it with trellis control --tls-san): %w", c.base.Host, c.base.Hostname(), err)
	case errors.As(err, &ver):
		return fmt.Errorf("control plane at %s: its certificate does not verify with the CA %s: %w", c.base.Host, c.caFrom, err)
	}
	return fmt.Errorf("control plane at %s: %w", c.base.Host, err)
}
