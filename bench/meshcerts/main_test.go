package main

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestRunWritesVerifiableSVIDs checks the files a Trellis pair loads: each
// chain and key form a pair, verify against ca.pem for both client and
// server use, and name exactly the sidecar's SPIFFE ID and no DNS name.
func TestRunWritesVerifiableSVIDs(t *testing.T) {
	dir := t.TempDir()
	if err := run(dir, "bench.trellis.local", "bench", time.Hour); err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.pem holds no certificate")
	}
	for svc, want := range map[string]string{"a": "spiffe://bench.trellis.local/bench/a", "b": "spiffe://bench.trellis.local/bench/b"} {
		base := filepath.Join(dir, "proxy-"+svc)
		pair, err := tls.LoadX509KeyPair(base+".pem", base+".key")
		if err != nil {
			t.Fatalf("%s: %v", svc, err)
		}
		leaf := pair.Leaf
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != want || len(leaf.DNSNames) != 0 {
			t.Errorf("%s: URIs %v DNS %v, want only %s", svc, leaf.URIs, leaf.DNSNames, want)
		}
		if leaf.NotAfter.After(time.Now().Add(time.Hour + time.Minute)) {
			t.Errorf("%s: NotAfter %v beyond the 1 h TTL", svc, leaf.NotAfter)
		}
		for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth} {
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
				t.Errorf("%s: verify for %v: %v", svc, usage, err)
			}
		}
	}
}

func TestRunRefusesBadInput(t *testing.T) {
	if err := run("", "bench.trellis.local", "bench", time.Hour); err == nil {
		t.Error("no -dir accepted")
	}
	if err := run(t.TempDir(), "spiffe://bench", "bench", time.Hour); err == nil {
		t.Error("a URI as trust domain accepted")
	}
	if err := run(t.TempDir(), "bench.trellis.local", "a/b", time.Hour); err == nil {
		t.Error("a mesh name with a slash accepted")
	}
}
