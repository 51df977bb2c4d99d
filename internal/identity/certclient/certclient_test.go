package certclient_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellis-mesh/trellis/internal/identity/certclient"
	"github.com/trellis-mesh/trellis/internal/identity/certclient/signtest"
)

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func newClient(t *testing.T, conn grpc.ClientConnInterface, tok, mesh, service string) *certclient.Client {
	t.Helper()
	c, err := certclient.New(certclient.Options{Conn: conn, Token: func() (string, error) { return tok, nil },
		Mesh: mesh, Service: service, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRenew: over a real gRPC server backed by the real Authority, the
// client learns its identity (custom trust domain), gets a leaf for its
// own key, and a fresh key each time.
func TestRenew(t *testing.T) {
	srv := signtest.Start(t, signtest.Options{Mesh: "shop", TrustDomain: "corp.example"})
	tok, _ := srv.Token(t, "web")
	c, err := certclient.New(certclient.Options{Conn: dial(t, srv.Addr), Token: func() (string, error) { return tok, nil },
		Mesh: "shop", Service: "web", Node: "shop/web-1"})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := c.Renew(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := srv.LastNode.Load().(string); got != "shop/web-1" {
		t.Errorf("trellis-node metadata = %q", got)
	}
	if got := cert.Leaf.URIs[0].String(); got != "spiffe://corp.example/shop/web" {
		t.Errorf("leaf URI = %s", got)
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: srv.CA.Bundle().Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("leaf does not verify against the mesh's bundle: %v", err)
	}
	again, err := c.Renew(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if again.Leaf.PublicKey.(*ecdsa.PublicKey).Equal(cert.Leaf.PublicKey) {
		t.Error("the second certificate reuses the first key")
	}
	if c.ID().String() != "spiffe://corp.example/shop/web" {
		t.Errorf("ID = %s", c.ID())
	}
}

// TestRefusals: the control plane's refusals come back as errors naming
// the code and the reason, as the proxy logs them.
func TestRefusals(t *testing.T) {
	srv := signtest.Start(t, signtest.Options{})
	conn := dial(t, srv.Addr)
	tokA, idA := srv.Token(t, "a")
	revoked, revokedID := srv.Token(t, "a")
	srv.Revoke(revokedID)
	for _, tc := range []struct {
		name, tok, service string
		code               codes.Code
		want               string
	}{
		{name: "another service", tok: tokA, service: "b", code: codes.PermissionDenied,
			want: `identity: certificate refused: PermissionDenied: csr: URI SAN "spiffe://default.trellis.local/default/b" does not match the granted identity "spiffe://default.trellis.local/default/a"`},
		{name: "revoked", tok: revoked, code: codes.Unauthenticated, want: "identity: token rejected: Unauthenticated: not authenticated: token " + revokedID + ": token revoked"},
		{name: "garbage", tok: "x.y.z", code: codes.Unauthenticated, want: "identity: token rejected: Unauthenticated: not authenticated: token: claims: not canonical base64url: invalid token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newClient(t, conn, tc.tok, "", tc.service).Renew(context.Background())
			var ce *certclient.CallError
			if !errors.As(err, &ce) || ce.Code != tc.code {
				t.Fatalf("Renew = %v, want code %s", err, tc.code)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error\n %s\nwant prefix\n %s", err, tc.want)
			}
		})
	}
	_ = idA
}

// TestFallbackWithoutIdentify: a control plane without Identify; the
// client names the identity in the default trust domain from the token's
// claims, which works for a default mesh and is refused for a custom one.
func TestFallbackWithoutIdentify(t *testing.T) {
	def := signtest.Start(t, signtest.Options{Mesh: "m", NoIdentify: true})
	tok, _ := def.Token(t, "web")
	cert, err := newClient(t, dial(t, def.Addr), tok, "", "").Renew(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := cert.Leaf.URIs[0].String(); got != "spiffe://m.trellis.local/m/web" {
		t.Errorf("leaf URI = %s", got)
	}
	custom := signtest.Start(t, signtest.Options{Mesh: "m", TrustDomain: "corp.example", NoIdentify: true})
	tok, _ = custom.Token(t, "web")
	_, err = newClient(t, dial(t, custom.Addr), tok, "", "").Renew(context.Background())
	if err == nil || !strings.Contains(err.Error(), "PermissionDenied") {
		t.Errorf("custom trust domain without Identify: %v, want PermissionDenied", err)
	}
}

// fakeConn answers Invoke with a fixed Struct: the shapes a control plane
// of another version could send.
type fakeConn struct {
	grpc.ClientConnInterface
	identify, sign map[string]any
}

func (f fakeConn) Invoke(_ context.Context, method string, _, reply any, _ ...grpc.CallOption) error {
	m := f.sign
	if method == certclient.IdentifyMethod {
		m = f.identify
	}
	s, err := structpb.NewStruct(m)
	if err != nil {
		return err
	}
	proto.Merge(reply.(*structpb.Struct), s)
	return nil
}

func TestResponseShapes(t *testing.T) {
	srv := signtest.Start(t, signtest.Options{})
	tok, _ := srv.Token(t, "web")
	good := map[string]any{"id": "spiffe://default.trellis.local/default/web"}
	b64 := base64.StdEncoding.EncodeToString
	for _, tc := range []struct {
		name           string
		identify, sign map[string]any
		want           string
	}{
		{name: "identify without id", identify: map[string]any{}, want: "Identify response: id: missing"},
		{name: "identify id not a string", identify: map[string]any{"id": 3.0}, want: "Identify response: id: want a string, got a number"},
		{name: "identify id of another shape", identify: map[string]any{"id": "spiffe://td/ns/x/sa/y"}, want: "Identify response: id: spiffe id"},
		{name: "no chain", identify: good, sign: map[string]any{}, want: "Sign response: chain: missing"},
		{name: "chain not a list", identify: good, sign: map[string]any{"chain": "x"}, want: "Sign response: chain: want a list of base64 certificates, got a string"},
		{name: "chain empty", identify: good, sign: map[string]any{"chain": []any{}}, want: "Sign response: chain: empty"},
		{name: "chain element", identify: good, sign: map[string]any{"chain": []any{true}}, want: "Sign response: chain[0]: want a base64 string, got a bool"},
		{name: "chain not base64", identify: good, sign: map[string]any{"chain": []any{"%%"}}, want: "Sign response: chain[0]: illegal base64"},
		{name: "chain not a certificate", identify: good, sign: map[string]any{"chain": []any{b64([]byte("x"))}}, want: "Sign response: csr: certificate chain: leaf"},
		{name: "other id", identify: good, sign: map[string]any{"id": "spiffe://default.trellis.local/default/x", "chain": []any{"AA=="}},
			want: `Sign response: id: "spiffe://default.trellis.local/default/x", but the CSR asked for "spiffe://default.trellis.local/default/web"`},
		{name: "bundle not PEM", identify: good, sign: map[string]any{"chain": []any{"AA=="}, "bundle": "x"}, want: "Sign response: bundle: no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newClient(t, fakeConn{identify: tc.identify, sign: tc.sign}, tok, "", "").Renew(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Renew = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	srv := signtest.Start(t, signtest.Options{})
	tok, _ := srv.Token(t, "web")
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", tok+"\n")
	if got, err := certclient.ReadToken(good); err != nil || got != tok {
		t.Errorf("ReadToken = %q, %v", got, err)
	}
	unreadable := write("unreadable", tok)
	if err := os.Chmod(unreadable, 0); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, want string }{
		{name: "missing", path: filepath.Join(dir, "nope"), want: "token file " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{name: "empty", path: write("empty", " \n"), want: "token file " + filepath.Join(dir, "empty") + ": empty"},
		{name: "not a token", path: write("junk", "hello"), want: "token file " + filepath.Join(dir, "junk") + ": token: 1 dot-separated parts, want 3 (JWS compact): invalid token"},
		{name: "directory", path: dir, want: "token file " + dir + ": is a directory"},
		{name: "unreadable", path: unreadable, want: "token file " + unreadable + ": permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "unreadable" && os.Geteuid() == 0 {
				t.Skip("root reads any file")
			}
			_, err := certclient.ReadToken(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ReadToken = %v, want %q", err, tc.want)
			}
		})
	}
}
