package meshca_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/trellis-mesh/trellis/internal/identity/csr"
	"github.com/trellis-mesh/trellis/internal/store"
)

// Tokens through the REST API, certificates over gRPC: the whole path and
// every refusal, against a real control plane.
func TestTokensAndSign(t *testing.T) {
	s := openStore(t)
	p := start(t, s, "a")
	ctx := ctxT(t)

	if _, err := p.api.CAStatus(ctx, "default"); apiStatus(err) != http.StatusNotFound {
		t.Fatalf("CA status before any use: %v, want 404", err)
	}
	web, err := p.api.CreateToken(ctx, "default", "web", "")
	if err != nil {
		t.Fatal(err)
	}
	if web.ID == "" || web.Token == "" || web.Mesh != "default" || web.Service != "web" || web.Revoked {
		t.Fatalf("created token: %+v", web)
	}
	if d := time.Until(web.Expiry); d < 364*24*time.Hour || d > 366*24*time.Hour {
		t.Errorf("default expiry in %v, want one year", d)
	}
	api, err := p.api.CreateToken(ctx, "default", "api", "1h")
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(api.Expiry); d < 59*time.Minute || d > time.Hour+time.Second {
		t.Errorf("1h token expires in %v", d)
	}
	for _, bad := range []struct{ mesh, service, ttl string }{
		{"default", "a/b", ""}, {"default", "web", "-1h"}, {"default", "web", "soon"}, {"nosuch", "web", ""},
	} {
		if _, err := p.api.CreateToken(ctx, bad.mesh, bad.service, bad.ttl); err == nil {
			t.Errorf("CreateToken(%q, %q, %q) succeeded", bad.mesh, bad.service, bad.ttl)
		}
	}

	list, err := p.api.ListTokens(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, r := range list {
		ids[r.ID] = r.Service
	}
	if len(list) != 2 || ids[web.ID] != "web" || ids[api.ID] != "api" {
		t.Fatalf("list: %+v", list)
	}
	raw := rawGet(t, p.url+"/api/v1/tokens")
	if strings.Contains(raw, web.Token) || strings.Contains(raw, `"token"`) {
		t.Errorf("token list shows token text: %s", raw)
	}

	webID := id(t, "spiffe://default.trellis.local/default/web")
	got, err := p.sign(t, web.Token, "web-1", webID)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	verify(t, got.chain, got.bundle, webID)
	if d := time.Until(got.chain[0].NotAfter); d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("leaf lives %v, want 24h", d)
	}

	refusals := []struct {
		name string
		tok  string
		der  func() []byte
		code codes.Code
		msg  string
	}{
		{"another identity", web.Token, csrFor(t, "spiffe://default.trellis.local/default/api"), codes.PermissionDenied, "does not match the granted identity"},
		{"another trust domain", web.Token, csrFor(t, "spiffe://evil.example/default/web"), codes.PermissionDenied, "does not match"},
		{"garbage csr", web.Token, func() []byte { return []byte("garbage") }, codes.InvalidArgument, "csr"},
		{"no token", "", csrFor(t, webID.String()), codes.Unauthenticated, "authorization"},
		{"malformed token", "x.y.z", csrFor(t, webID.String()), codes.Unauthenticated, "not authenticated"},
		{"expired token", expiredToken(t, s, "default", "web"), csrFor(t, webID.String()), codes.Unauthenticated, "expired"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.signDER(t, tc.tok, "", tc.der())
			if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.msg) {
				t.Fatalf("got %v, want %v containing %q", err, tc.code, tc.msg)
			}
		})
	}

	rec, err := p.api.RevokeToken(ctx, "", web.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Revoked || rec.ID != web.ID {
		t.Fatalf("revoked record: %+v", rec)
	}
	if _, err := p.sign(t, web.Token, "web-1", webID); status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("Sign with a revoked token: %v, want Unauthenticated (revoked)", err)
	}
	if rec, err := p.api.RevokeToken(ctx, "default", web.ID); err != nil || !rec.Revoked {
		t.Fatalf("second revoke: %+v, %v", rec, err)
	}
	if _, err := p.api.RevokeToken(ctx, "", "0123456789abcdef0123456789abcdef"); apiStatus(err) != http.StatusNotFound {
		t.Fatalf("revoke unknown: %v, want 404", err)
	}
	// The other token still works.
	apiID := id(t, "spiffe://default.trellis.local/default/api")
	if got, err := p.sign(t, api.Token, "api-1", apiID); err != nil {
		t.Fatalf("Sign with the api token: %v", err)
	} else {
		verify(t, got.chain, got.bundle, apiID)
	}
}

// A raw request without a proper body or base64 gets InvalidArgument too.
func TestSignNotBase64(t *testing.T) {
	p := start(t, openStore(t), "a")
	tok, err := p.api.CreateToken(ctxT(t), "", "web", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.signDER(t, tok.Token, "", nil)
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("empty csr: %v", err)
	}
}

func csrFor(t *testing.T, s string) func() []byte {
	return func() []byte {
		key, err := csr.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		der, err := csr.Build(key, id(t, s))
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
}

func rawGet(t *testing.T, url string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctxT(t), http.MethodGet, url, nil)
	if !strings.HasSuffix(url, "/metrics") {
		req.Header.Set("Authorization", "Bearer "+adminToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, body)
	}
	return string(body)
}

// Two replicas over one store: the CA created by one is the other's, a
// token made on one works on the other, and a revocation on one is
// honoured by the other at its next request.
func TestTwoReplicasShareState(t *testing.T) {
	s := openStore(t)
	a, b := start(t, s, "a"), start(t, s, "b")
	ctx := ctxT(t)
	tok, err := a.api.CreateToken(ctx, "default", "web", "")
	if err != nil {
		t.Fatal(err)
	}
	webID := id(t, "spiffe://default.trellis.local/default/web")
	fromB, err := b.sign(t, tok.Token, "web-1", webID)
	if err != nil {
		t.Fatalf("Sign on b with a token from a: %v", err)
	}
	fromA, err := a.sign(t, tok.Token, "web-2", webID)
	if err != nil {
		t.Fatal(err)
	}
	verify(t, fromB.chain, fromA.bundle, webID)
	verify(t, fromA.chain, fromB.bundle, webID)

	// b's cache (fed by its store watch) has a's CA.
	pemA, verA, okA := a.c.Identity().Bundle("default")
	poll(t, func() bool {
		pemB, verB, okB := b.c.Identity().Bundle("default")
		return okA && okB && verA == verB && string(pemA) == string(pemB)
	}, "b's bundle to match a's")

	if _, err := a.api.RevokeToken(ctx, "default", tok.ID); err != nil {
		t.Fatal(err)
	}
	// Bound: b reads the revocation from the store on its very next
	// request, so no waiting is allowed at all.
	if _, err := b.sign(t, tok.Token, "web-1", webID); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Sign on b after revoking on a: %v, want Unauthenticated", err)
	}
	list, err := b.api.ListTokens(ctx, "")
	if err != nil || len(list) != 1 || !list[0].Revoked {
		t.Fatalf("b lists %+v, %v", list, err)
	}
}

// A token for a mesh whose Mesh object is gone is refused as
// unauthenticated, and a token record that vanished counts as revoked.
func TestTokenRecordGone(t *testing.T) {
	s := openStore(t)
	p := start(t, s, "a")
	tok, err := p.api.CreateToken(ctxT(t), "default", "web", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctxT(t), store.Key{Kind: "Token", Namespace: "default", Name: tok.ID}, 0); err != nil {
		t.Fatal(err)
	}
	_, err = p.sign(t, tok.Token, "", id(t, "spiffe://default.trellis.local/default/web"))
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Sign with a token whose record is gone: %v", err)
	}
}

// GET /metrics needs no token and exports the CA's remaining life.
func TestMetrics(t *testing.T) {
	p := start(t, openStore(t), "a")
	if _, err := p.api.CreateToken(ctxT(t), "", "web", ""); err != nil {
		t.Fatal(err)
	}
	body := rawGet(t, p.url+"/metrics")
	if !strings.Contains(body, `trellis_identity_cert_expiry_seconds{kind="root",mesh="default",service=""}`) {
		t.Fatalf("no root expiry series in /metrics:\n%s", body)
	}
	if !strings.Contains(body, "go_goroutines") {
		t.Error("no Go runtime metrics")
	}
}

// The request body of the identity endpoints is strict JSON.
func TestStrictBodies(t *testing.T) {
	p := start(t, openStore(t), "a")
	for _, body := range []string{`{"mesh":"default","service":"web","extra":1}`, `not json`, `{"service":"web"} {}`} {
		req, _ := http.NewRequestWithContext(ctxT(t), http.MethodPost, p.url+"/api/v1/tokens", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(e.Error, "request body") {
			t.Errorf("%s: %d %q, want 400", body, resp.StatusCode, e.Error)
		}
	}
	req, _ := http.NewRequestWithContext(ctxT(t), http.MethodGet, p.url+"/api/v1/tokens", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("tokens without the admin token: %d", resp.StatusCode)
	}
}
