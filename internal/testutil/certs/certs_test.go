package certs

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestIssue(t *testing.T) {
	root := NewCA(t, "root")
	inter := root.NewIntermediate(t, "intermediate")

	tests := []struct {
		name    string
		ca      *CA
		opts    LeafOptions
		usage   x509.ExtKeyUsage
		wantLen int // certificates in CertPEM
	}{
		{
			name:    "server leaf from root",
			ca:      root,
			opts:    LeafOptions{DNSNames: []string{"a.example.com"}, IPs: []string{"127.0.0.1"}, Usage: Server},
			usage:   x509.ExtKeyUsageServerAuth,
			wantLen: 1,
		},
		{
			name:    "client leaf from intermediate",
			ca:      inter,
			opts:    LeafOptions{URIs: []string{"spiffe://example.org/ns/a/sa/b"}, Emails: []string{"a@example.org"}, Usage: Client},
			usage:   x509.ExtKeyUsageClientAuth,
			wantLen: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := tc.ca.Issue(t, tc.opts)
			if got := bytes.Count(l.CertPEM, []byte("BEGIN CERTIFICATE")); got != tc.wantLen {
				t.Errorf("CertPEM holds %d certificates, want %d", got, tc.wantLen)
			}
			for _, f := range []struct {
				path string
				want []byte
			}{{l.CertFile, l.CertPEM}, {l.KeyFile, l.KeyPEM}, {tc.ca.File(), tc.ca.PEM()}} {
				got, err := os.ReadFile(f.path)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, f.want) {
					t.Errorf("%s does not hold the PEM", f.path)
				}
			}
			inters := x509.NewCertPool()
			for _, der := range l.TLS.Certificate[1:] {
				c, err := x509.ParseCertificate(der)
				if err != nil {
					t.Fatal(err)
				}
				inters.AddCert(c)
			}
			if _, err := l.TLS.Leaf.Verify(x509.VerifyOptions{Roots: root.Pool(), Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{tc.usage}}); err != nil {
				t.Errorf("leaf does not verify against the root: %v", err)
			}
			var ips []string
			for _, ip := range l.TLS.Leaf.IPAddresses {
				ips = append(ips, ip.String())
			}
			var uris []string
			for _, u := range l.TLS.Leaf.URIs {
				uris = append(uris, u.String())
			}
			got := LeafOptions{DNSNames: l.TLS.Leaf.DNSNames, URIs: uris, IPs: ips, Emails: l.TLS.Leaf.EmailAddresses, Usage: tc.opts.Usage}
			if diff := cmp.Diff(tc.opts, got); diff != "" {
				t.Errorf("SANs mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIntermediatePoolIsPartialChainAnchor(t *testing.T) {
	inter := NewCA(t, "root").NewIntermediate(t, "intermediate")
	l := inter.Issue(t, LeafOptions{})
	if _, err := l.TLS.Leaf.Verify(x509.VerifyOptions{Roots: inter.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("leaf does not verify against its intermediate alone: %v", err)
	}
	if b, _ := pem.Decode(l.KeyPEM); b == nil || b.Type != "PRIVATE KEY" {
		t.Errorf("KeyPEM is not a PKCS #8 PEM block")
	}
}
