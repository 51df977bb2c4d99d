package control

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/trellis-mesh/trellis/internal/store"
)

// TLSMode says when the control plane serves TLS on its API and xDS
// listeners.
type TLSMode string

// TLS modes.
const (
	// TLSAuto serves TLS on a listener whose address is not loopback, and
	// plaintext on loopback (trusted: only this machine reaches it).
	TLSAuto TLSMode = "auto"
	// TLSOn serves TLS on both listeners.
	TLSOn TLSMode = "on"
	// TLSOff serves plaintext on both listeners, wherever they listen.
	TLSOff TLSMode = "off"
)

// CAFile is the control-plane CA certificate's file in the data directory:
// what clients and proxies verify the control plane's serving certificate
// with.
const CAFile = "ca.crt"

// Validity of the control-plane CA and of the serving certificates it
// issues (one at each start of a replica).
const (
	controlCAValidity      = 10 * 365 * 24 * time.Hour
	servingCertValidity    = 365 * 24 * time.Hour
	kindControlPlaneCA     = "ControlPlaneCA"
	controlPlaneCARecordID = "control-plane"
)

// controlCAKey is the store record of the control-plane CA, shared by every
// replica. Its kind is not a mesh resource: the manager and the reconciler
// skip it.
var controlCAKey = store.Key{Kind: kindControlPlaneCA, Name: controlPlaneCARecordID}

// controlCARecord is the stored control-plane CA: certificate and PKCS#8
// key, PEM.
type controlCARecord struct {
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

// useTLS reports whether a listener on addr serves TLS in mode.
func useTLS(mode TLSMode, addr string) bool {
	switch mode {
	case TLSOn:
		return true
	case TLSOff:
		return false
	}
	return !isLoopback(addr)
}

// isLoopback reports whether addr (host:port) listens on loopback only.
// An empty host or an unspecified address listens everywhere.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// servingTLS is the control plane's serving certificate and the CA clients
// verify it with.
type servingTLS struct {
	cert  tls.Certificate
	caPEM []byte // nil for a user-provided certificate (clients bring their CA)
}

// loadServingTLS returns the serving certificate: the user's files, or one
// issued now by the control-plane CA (made and stored on first use) for
// the hosts of the listen addresses, extra SANs, localhost and the
// loopback addresses.
func loadServingTLS(ctx context.Context, st store.Store, certFile, keyFile string, addrs, extra []string) (*servingTLS, error) {
	if certFile != "" || keyFile != "" {
		if certFile == "" || keyFile == "" {
			return nil, errors.New("tls: the certificate and key files go together")
		}
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: serving certificate %s / key %s: %w", certFile, keyFile, err)
		}
		return &servingTLS{cert: cert}, nil
	}
	caCert, caKey, caPEM, err := controlCA(ctx, st)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	dns, ips := servingNames(addrs, extra)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "trellis control plane", Organization: []string{"Trellis"}},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(servingCertValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	if tmpl.NotAfter.After(caCert.NotAfter) {
		tmpl.NotAfter = caCert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("tls: issuing the serving certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &servingTLS{cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, caPEM: caPEM}, nil
}

// servingNames returns the DNS and IP SANs of the serving certificate.
func servingNames(addrs, extra []string) ([]string, []net.IP) {
	dns := []string{"localhost"}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	add := func(name string) {
		if name == "" {
			return
		}
		if ip := net.ParseIP(name); ip != nil {
			if !ip.IsUnspecified() && !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			return
		}
		if !slices.Contains(dns, name) {
			dns = append(dns, name)
		}
	}
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err == nil {
			add(host)
		}
	}
	if h, err := os.Hostname(); err == nil {
		add(h)
	}
	for _, e := range extra {
		add(strings.TrimSpace(e))
	}
	return dns, ips
}

// controlCA returns the control-plane CA, creating and storing it on first
// use. Replicas racing to create it all end up with the stored one.
func controlCA(ctx context.Context, st store.Store) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
	for range 3 {
		res, err := st.Get(ctx, controlCAKey)
		if err == nil {
			return parseControlCA(res.Value)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, nil, nil, fmt.Errorf("tls: reading the control-plane CA: %w", err)
		}
		rec, err := newControlCA()
		if err != nil {
			return nil, nil, nil, err
		}
		data, _ := json.Marshal(rec)
		if _, err := st.Create(ctx, controlCAKey, data); err == nil {
			return parseControlCA(data)
		} else if !errors.Is(err, store.ErrExists) {
			return nil, nil, nil, fmt.Errorf("tls: storing the control-plane CA: %w", err)
		}
	}
	return nil, nil, nil, errors.New("tls: the control-plane CA record keeps changing")
}

// newControlCA generates a self-signed ECDSA P-256 root for the control
// plane's serving certificates.
func newControlCA() (controlCARecord, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return controlCARecord{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Trellis control-plane CA", Organization: []string{"Trellis"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(controlCAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return controlCARecord{}, err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return controlCARecord{}, err
	}
	return controlCARecord{
		Cert: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		Key:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})),
	}, nil
}

func parseControlCA(data []byte) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
	var rec controlCARecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, nil, nil, fmt.Errorf("tls: %s: %w", controlCAKey, err)
	}
	cb, _ := pem.Decode([]byte(rec.Cert))
	kb, _ := pem.Decode([]byte(rec.Key))
	if cb == nil || kb == nil {
		return nil, nil, nil, fmt.Errorf("tls: %s: cert and key must be PEM", controlCAKey)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("tls: %s: cert: %w", controlCAKey, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("tls: %s: key: %w", controlCAKey, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, nil, fmt.Errorf("tls: %s: key: %T, want ECDSA", controlCAKey, k)
	}
	return cert, key, []byte(rec.Cert), nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return n
}

// apiTLSConfig is the API listener's TLS configuration.
func (s *servingTLS) apiTLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{s.cert}}
}

// xdsTLSConfig is the xDS listener's: a proxy may present its mesh
// certificate, which peercheck verifies against its mesh's trust bundle
// once the stream names the proxy (the mesh is not known at the
// handshake).
func (s *servingTLS) xdsTLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{s.cert}, ClientAuth: tls.RequestClientCert}
}
