package client_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/internal/control/client"
)

// TestTLSVerification: an https server is verified with the configured CA
// (a file, inline PEM or TRELLIS_CA_FILE); another CA or a name the
// certificate does not hold fails with an error saying so.
func TestTLSVerification(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(`{"items": []}`))
	}))
	t.Cleanup(srv.Close)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	dir := t.TempDir()
	good, wrong := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "wrong.crt")
	if err := os.WriteFile(good, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wrong, otherCA(t), 0o600); err != nil {
		t.Fatal(err)
	}
	list := func(cfg client.Config) error {
		t.Helper()
		c, err := client.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.List(context.Background(), "Service", "")
		return err
	}
	if err := list(client.Config{Server: srv.URL, CAFile: good}); err != nil {
		t.Errorf("caFile: %v", err)
	}
	if err := list(client.Config{Server: srv.URL, CA: string(caPEM)}); err != nil {
		t.Errorf("inline ca: %v", err)
	}
	if err := list(client.Config{Server: srv.URL, CAFile: wrong}); err == nil || !strings.Contains(err.Error(), "its certificate is not signed by the CA "+wrong) {
		t.Errorf("wrong CA: %v", err)
	}
	if err := list(client.Config{Server: srv.URL}); err == nil || !strings.Contains(err.Error(), "not signed by the CA (the system's roots)") {
		t.Errorf("no CA: %v", err)
	}
	// httptest's certificate holds 127.0.0.1 and example.com, not localhost.
	byName := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	if err := list(client.Config{Server: byName, CAFile: good}); err == nil || !strings.Contains(err.Error(), `its certificate is not valid for "localhost"`) {
		t.Errorf("wrong name: %v", err)
	}

	env(t, map[string]string{"TRELLIS_SERVER": srv.URL, "TRELLIS_CA_FILE": good})
	cfg, err := client.LoadConfig()
	if err != nil || cfg.CAFile != good {
		t.Fatalf("LoadConfig = %+v, %v; want caFile from TRELLIS_CA_FILE", cfg, err)
	}
	if err := list(cfg); err != nil {
		t.Errorf("TRELLIS_CA_FILE: %v", err)
	}
	if _, err := client.New(client.Config{Server: "http://127.0.0.1:1", CAFile: good}); err == nil {
		t.Error("a CA with an http:// server accepted")
	}
	if _, err := client.New(client.Config{Server: srv.URL, CA: "junk"}); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("junk CA: %v", err)
	}
}

// otherCA returns the PEM of a self-signed CA that signed nothing.
func otherCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
