package meshca_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/trellis-mesh/trellis/internal/control"
	"github.com/trellis-mesh/trellis/internal/control/client"
	"github.com/trellis-mesh/trellis/internal/control/meshca"
	"github.com/trellis-mesh/trellis/internal/identity/csr"
	"github.com/trellis-mesh/trellis/internal/identity/token"
	"github.com/trellis-mesh/trellis/internal/store"
	"github.com/trellis-mesh/trellis/internal/store/bolt"
)

const (
	adminToken  = "admin-test-token"
	waitTimeout = 15 * time.Second
)

// plane is one running control-plane replica with a REST client and a
// gRPC connection to its xDS port.
type plane struct {
	c   *control.Control
	api *client.Client
	cc  *grpc.ClientConn
	url string
}

func openStore(t testing.TB) store.Store {
	t.Helper()
	s, err := bolt.Open(filepath.Join(t.TempDir(), "trellis.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// start runs a control plane over s on 127.0.0.1:0, stopped at cleanup.
func start(t *testing.T, s store.Store, name string) *plane {
	t.Helper()
	return startTTL(t, s, name, 0)
}

// startTTL is start with the lifetime of issued leaves (0: default).
func startTTL(t *testing.T, s store.Store, name string, leafTTL time.Duration) *plane {
	t.Helper()
	c, err := control.New(control.Options{Store: s, APIAddr: "127.0.0.1:0", XDSAddr: "127.0.0.1:0", Token: adminToken, Name: name, LeafTTL: leafTTL})
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
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitTimeout):
			t.Errorf("Run did not return %s after its context ended", waitTimeout)
		}
	})
	select {
	case <-c.Ready():
	case <-time.After(waitTimeout):
		t.Fatal("control plane not ready")
	}
	apiAddr, xdsAddr := c.Addrs()
	api, err := client.New(client.Config{Server: apiAddr, Token: adminToken})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return &plane{c: c, api: api, cc: cc, url: "http://" + apiAddr}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

func id(t *testing.T, s string) spiffeid.ID {
	t.Helper()
	v, err := spiffeid.FromString(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// signed is the answer of one Sign call.
type signed struct {
	chain  []*x509.Certificate
	bundle *x509bundle.Bundle
}

// sign makes a fresh key and a CSR for want and asks p for a certificate
// with tok, as the node; it returns the gRPC error as is.
func (p *plane) sign(t *testing.T, tok, node string, want spiffeid.ID) (signed, error) {
	t.Helper()
	key, err := csr.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	der, err := csr.Build(key, want)
	if err != nil {
		t.Fatal(err)
	}
	return p.signDER(t, tok, node, der)
}

func (p *plane) signDER(t *testing.T, tok, node string, der []byte) (signed, error) {
	t.Helper()
	chainDER, bundlePEM, err := meshca.Sign(ctxT(t), p.cc, tok, node, der)
	if err != nil {
		if _, ok := status.FromError(err); !ok {
			t.Fatalf("Sign: not a gRPC status: %v", err)
		}
		return signed{}, err
	}
	var out signed
	for _, d := range chainDER {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			t.Fatal(err)
		}
		out.chain = append(out.chain, c)
	}
	td := spiffeid.RequireTrustDomainFromString(out.chain[0].URIs[0].Host)
	if out.bundle, err = x509bundle.Parse(td, bundlePEM); err != nil {
		t.Fatalf("bundle: %v", err)
	}
	return out, nil
}

// verify checks the chain against b and that it names want.
func verify(t *testing.T, chain []*x509.Certificate, b *x509bundle.Bundle, want spiffeid.ID) {
	t.Helper()
	got, _, err := x509svid.Verify(chain, b)
	if err != nil {
		t.Fatalf("x509svid.Verify: %v", err)
	}
	if got != want {
		t.Fatalf("verified identity %s, want %s", got, want)
	}
}

// expiredToken forges, with the mesh's real token key read from s, a
// token for mesh/service that expired two minutes ago (beyond the clock
// skew allowance), and records it as the API would.
func expiredToken(t *testing.T, s store.Store, mesh, service string) string {
	t.Helper()
	ctx := ctxT(t)
	res, err := s.Get(ctx, store.Key{Kind: "TokenKey", Name: mesh})
	if err != nil {
		t.Fatal(err)
	}
	key, err := token.UnmarshalKey(res.Value)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	sum := sha256.Sum256(pub)
	b64 := base64.RawURLEncoding
	jti := make([]byte, 16)
	rand.Read(jti)
	now := time.Now().Add(-time.Hour).Unix()
	h, _ := json.Marshal(map[string]string{"alg": "ES256", "typ": "JWT", "kid": hex.EncodeToString(sum[:8])})
	c, _ := json.Marshal(map[string]any{"iss": "trellis", "aud": token.Audience, "mesh": mesh, "service": service,
		"jti": hex.EncodeToString(jti), "iat": now, "exp": now + int64((time.Hour - 2*time.Minute).Seconds())})
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	digest := sha256.Sum256([]byte(input))
	r, ss, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	var sig [64]byte
	r.FillBytes(sig[:32])
	ss.FillBytes(sig[32:])
	rec, _ := json.Marshal(meshca.TokenRecord{ID: hex.EncodeToString(jti), Mesh: mesh, Service: service,
		IssuedAt: time.Unix(now, 0).UTC(), Expiry: time.Unix(now, 0).Add(time.Hour - 2*time.Minute).UTC()})
	if _, err := s.Create(ctx, store.Key{Kind: "Token", Namespace: mesh, Name: hex.EncodeToString(jti)}, rec); err != nil {
		t.Fatal(err)
	}
	return input + "." + b64.EncodeToString(sig[:])
}

// apiStatus returns the HTTP status of a client error (0 if none).
func apiStatus(err error) int {
	var e *client.APIError
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// poll waits until cond holds, checking every 10ms, and fails the test
// after waitTimeout.
func poll(t *testing.T, cond func() bool, what string) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(waitTimeout)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
