package bridge

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
)

// credentials reads a broker's username and password files ("" when not
// configured).
func credentials(bc Broker) (user, pass string, err error) {
	if bc.UsernameFile == "" {
		return "", "", nil
	}
	u, err := os.ReadFile(bc.UsernameFile)
	if err != nil {
		return "", "", fmt.Errorf("usernameFile: %w", err)
	}
	p, err := os.ReadFile(bc.PasswordFile)
	if err != nil {
		return "", "", fmt.Errorf("passwordFile: %w", err)
	}
	return strings.TrimRight(string(u), "\r\n"), strings.TrimRight(string(p), "\r\n"), nil
}

// tlsConfig builds a broker's client TLS configuration, or nil.
func tlsConfig(t *TLS) (*tls.Config, error) {
	if t == nil {
		return nil, nil
	}
	c := &tls.Config{ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.caFile: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.caFile %s: no PEM certificate", t.CAFile)
		}
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.certFile: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
