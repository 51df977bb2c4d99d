package control_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/yaml"

	"github.com/trellis-mesh/trellis/internal/cli"
	"github.com/trellis-mesh/trellis/internal/cli/proxycmd"
	"github.com/trellis-mesh/trellis/internal/control"
	"github.com/trellis-mesh/trellis/internal/control/client"
	"github.com/trellis-mesh/trellis/internal/identity/certclient"
	"github.com/trellis-mesh/trellis/internal/store/bolt"
	"github.com/trellis-mesh/trellis/internal/xds/ads"
)

const tlsToken = "tls-admin-token"

// startTLS runs a control plane with TLS forced on (both listeners on
// 127.0.0.1:0) over a fresh bbolt store with its data in dir.
func startTLS(t *testing.T, dir string) *control.Control { return startMode(t, dir, control.TLSOn) }

// startMode runs a control plane in TLS mode mode until cleanup.
func startMode(t *testing.T, dir string, mode control.TLSMode) *control.Control {
	t.Helper()
	return startOpts(t, dir, control.Options{TLS: mode})
}

// startOpts runs a control plane with opts (store, addresses, data dir,
// token and logger filled in) until cleanup.
func startOpts(t *testing.T, dir string, opts control.Options) *control.Control {
	t.Helper()
	s, err := bolt.Open(filepath.Join(dir, "trellis.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	opts.Store, opts.APIAddr, opts.XDSAddr, opts.DataDir, opts.Token = s, "127.0.0.1:0", "127.0.0.1:0", dir, tlsToken
	opts.Logger = slog.New(slog.DiscardHandler)
	c, err := control.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("control plane: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("control plane did not stop")
		}
	})
	<-c.Ready()
	return c
}

// TestTLSAPI: with TLS on, the API serves the certificate of the
// control plane's own CA, the client config written to the data dir
// points at https and ca.crt, the CLI verifies it, and a wrong CA is
// refused with an error saying what to do.
func TestTLSAPI(t *testing.T) {
	dir := t.TempDir()
	c := startTLS(t, dir)
	apiTLS, xdsTLS, caPEM := c.TLS()
	if !apiTLS || !xdsTLS || caPEM == nil {
		t.Fatalf("TLS() = %v, %v, %d bytes of CA", apiTLS, xdsTLS, len(caPEM))
	}
	onDisk, err := os.ReadFile(filepath.Join(dir, control.CAFile))
	if err != nil || !bytes.Equal(onDisk, caPEM) {
		t.Fatalf("%s: %v (equal to the CA: %v)", control.CAFile, err, bytes.Equal(onDisk, caPEM))
	}
	data, err := os.ReadFile(filepath.Join(dir, client.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var cfg client.Config
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cfg.Server, "https://127.0.0.1:") || cfg.CAFile != filepath.Join(dir, control.CAFile) {
		t.Fatalf("client config = %+v", cfg)
	}

	// The CLI with the written config verifies the server.
	t.Setenv("TRELLIS_CONFIG", filepath.Join(dir, client.ConfigFile))
	var out, errOut bytes.Buffer
	if code := cli.Main(context.Background(), []string{"get", "services"}, &out, &errOut); code != 0 {
		t.Fatalf("trellis get services: exit %d: %s", code, errOut.String())
	}

	// A CA that did not sign the server's certificate.
	other := startTLS(t, t.TempDir())
	_, _, otherCA := other.TLS()
	wrong := filepath.Join(t.TempDir(), "other-ca.crt")
	if err := os.WriteFile(wrong, otherCA, 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errOut.Reset()
	if code := cli.Main(context.Background(), []string{"get", "services", "--ca-file", wrong}, &out, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), "its certificate is not signed by the CA "+wrong) {
		t.Errorf("with another CA: exit %d, stderr %q", code, errOut.String())
	}
	// Plain HTTP to a TLS API fails rather than sending the token in clear.
	cl, err := client.New(client.Config{Server: strings.Replace(cfg.Server, "https", "http", 1), Token: tlsToken})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.List(context.Background(), "Service", ""); err == nil {
		t.Error("plain HTTP to the TLS API succeeded")
	}
	// A CA without https is a configuration error.
	if _, err := client.New(client.Config{Server: "http://127.0.0.1:1", CAFile: wrong}); err == nil {
		t.Error("caFile with an http:// server accepted")
	}
}

// TestTLSLoopbackDefault: on loopback, the default stays plaintext.
func TestTLSLoopbackDefault(t *testing.T) {
	dir := t.TempDir()
	c := startMode(t, dir, "")
	api, xds, ca := c.TLS()
	if api || xds || ca != nil || !strings.HasPrefix(c.APIURL(), "http://") {
		t.Errorf("loopback: TLS() = %v, %v, %v; APIURL %s", api, xds, ca != nil, c.APIURL())
	}
	if _, err := os.Stat(filepath.Join(dir, control.CAFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s written for a plaintext control plane: %v", control.CAFile, err)
	}
	// The plaintext API answers as before.
	cl, err := client.New(client.Config{Server: c.APIURL(), Token: tlsToken})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.List(context.Background(), "Service", ""); err != nil {
		t.Errorf("plaintext API on loopback: %v", err)
	}
}

// TestTLSProvidedCertificate: with --tls-cert/--tls-key the control plane
// serves the user's certificate, writes no ca.crt, and clients verify it
// with the user's CA.
func TestTLSProvidedCertificate(t *testing.T) {
	files := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "mine"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(files, "cert.pem"), filepath.Join(files, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := startOpts(t, dir, control.Options{TLS: control.TLSOn, TLSCertFile: certFile, TLSKeyFile: keyFile})
	if api, xds, ca := c.TLS(); !api || !xds || ca != nil {
		t.Errorf("TLS() = %v, %v, CA %v; want TLS without a CA of its own", api, xds, ca != nil)
	}
	if _, err := os.Stat(filepath.Join(dir, control.CAFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s written with a provided certificate: %v", control.CAFile, err)
	}
	cl, err := client.New(client.Config{Server: c.APIURL(), Token: tlsToken, CAFile: certFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.List(context.Background(), "Service", ""); err != nil {
		t.Errorf("API with the provided certificate: %v", err)
	}
}

const tlsMesh = `apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata: {name: shop}
---
apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata: {name: open}
spec: {mtls: {mode: DISABLED}}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: a, labels: {trellis.dev/mesh: shop}}
spec: {selector: {app: a}, ports: [{port: 80, protocol: http}]}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: b, labels: {trellis.dev/mesh: shop}}
spec: {selector: {app: b}, ports: [{port: 80, protocol: http}]}
---
apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: b-1, labels: {app: b, trellis.dev/mesh: shop}}
spec: {address: 127.0.0.1, inbound: [{port: 10080, servicePort: 80, appPort: 9}]}
---
apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: o-1, labels: {app: o, trellis.dev/mesh: open}}
spec: {address: 127.0.0.1, inbound: [{port: 10080, servicePort: 80, appPort: 9}]}
`

// dataplaneA is the Dataplane a proxy of service a sends (its inbound on
// port %d).
const dataplaneA = `apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: a-1, labels: {app: a, trellis.dev/mesh: shop}}
spec: {address: 127.0.0.1, inbound: [{port: %d, servicePort: 80, appPort: 9}]}
`

func applyTLS(t *testing.T, c *control.Control, caFile, docs string) {
	t.Helper()
	cl, err := client.New(client.Config{Server: c.APIURL(), Token: tlsToken, CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Apply(context.Background(), strings.NewReader(docs)); err != nil {
		t.Fatal(err)
	}
}

// adsFirst opens an ADS stream over a new connection with creds as node
// and returns the first response or the stream's error.
func adsFirst(t *testing.T, addr string, creds func() (*tls.Certificate, error), caPEM []byte, node *corev3.Node) error {
	t.Helper()
	tc, err := ads.TLSCredentials(caPEM, func() *tls.Certificate {
		if creds == nil {
			return nil
		}
		c, err := creds()
		if err != nil {
			t.Error(err)
		}
		return c
	})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := ads.Dial(addr, tc)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	if err := st.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resource.ClusterType}); err != nil {
		return err
	}
	_, err = st.Recv()
	return err
}

// TestXDSStreamIdentity: over TLS, the certificate service answers a
// proxy without a client certificate; ADS for a sidecar of an mTLS mesh
// needs its certificate, and the certificate's identity must be the one
// of the Dataplane the node id names.
func TestXDSStreamIdentity(t *testing.T) {
	dir := t.TempDir()
	c := startTLS(t, dir)
	_, _, caPEM := c.TLS()
	caFile := filepath.Join(dir, control.CAFile)
	applyTLS(t, c, caFile, tlsMesh)
	_, xdsAddr := c.Addrs()
	tokA, err := c.Identity().CreateToken(context.Background(), "shop", "a", time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	// A certificate for a, obtained over TLS without a client certificate.
	tc, err := ads.TLSCredentials(caPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := ads.Dial(xdsAddr, tc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	cc, err := certclient.New(certclient.Options{Conn: conn, Token: func() (string, error) { return tokA.Token, nil }, Mesh: "shop", Service: "a", Node: "default/a-1"})
	if err != nil {
		t.Fatal(err)
	}
	certA, err := cc.Renew(context.Background())
	if err != nil {
		t.Fatalf("Sign over TLS without a client certificate: %v", err)
	}
	withA := func() (*tls.Certificate, error) { return certA, nil }
	nodeA, err := ads.ParseDataplane([]byte(fmt.Sprintf(dataplaneA, 10080)))
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		cert   func() (*tls.Certificate, error)
		node   *corev3.Node
		denied string // "" means allowed
	}{
		{"own identity", withA, nodeA, ""},
		{"another service's dataplane", withA, ads.StaticNode("default/b-1", "shop"),
			`client certificate is "spiffe://shop.trellis.local/shop/a", but node "default/b-1" is a Dataplane of identity "spiffe://shop.trellis.local/shop/b"`},
		{"no certificate in an mTLS mesh", nil, nodeA, `node "default/a-1" is a sidecar of mesh "shop", which has mutual TLS`},
		{"no certificate, mTLS disabled", nil, ads.StaticNode("default/o-1", "open"), ""},
		{"unknown dataplane", withA, ads.StaticNode("default/nobody", "shop"), `node "default/nobody" names no Dataplane`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := adsFirst(t, xdsAddr, tc.cert, caPEM, tc.node)
			if tc.denied == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), tc.denied) {
				t.Fatalf("got %v, want PermissionDenied with %q", err, tc.denied)
			}
		})
	}
}

// TestProxyOverTLS: `trellis-proxy --control-plane-ca` with a token, in
// an mTLS mesh: it obtains its certificate over TLS, then presents it on
// a new connection, gets its configuration and becomes ready.
func TestProxyOverTLS(t *testing.T) {
	dir := t.TempDir()
	c := startTLS(t, dir)
	caFile := filepath.Join(dir, control.CAFile)
	applyTLS(t, c, caFile, tlsMesh)
	_, xdsAddr := c.Addrs()
	tok, err := c.Identity().CreateToken(context.Background(), "shop", "a", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	files := t.TempDir()
	tokenFile, dpFile := filepath.Join(files, "token"), filepath.Join(files, "a-1.yaml")
	if err := os.WriteFile(tokenFile, []byte(tok.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dpFile, fmt.Appendf(nil, dataplaneA, freePorts(t, 1)[0]), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut lockedBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- proxycmd.Main(ctx, []string{"--control-plane", xdsAddr, "--dataplane", dpFile, "--token-file", tokenFile,
			"--control-plane-ca", caFile, "--admin-address", "127.0.0.1:0", "--drain-timeout", "1s"}, &out, &errOut)
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-exit; code != 0 {
			t.Errorf("proxy exit %d; stderr:\n%s", code, errOut.String())
		}
	})
	admin := regexp.MustCompile(`admin listening on (\S+)`)
	var adminAddr string
	pollUntil(t, "the proxy to be ready", func() (bool, string) {
		if adminAddr == "" {
			m := admin.FindStringSubmatch(out.String())
			if m == nil {
				return false, errOut.String()
			}
			adminAddr = m[1]
		}
		resp, err := http.Get("http://" + adminAddr + "/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, errOut.String()
	})
	if !strings.Contains(out.String(), "listening on") {
		t.Errorf("no listener printed:\n%s", out.String())
	}
	// The tap stream rides the same connection, checked the same way.
	pollUntil(t, "the proxy's tap stream", func() (bool, string) {
		return len(c.Tap().Proxies()) == 1, fmt.Sprint(c.Tap().Proxies(), errOut.String())
	})
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
