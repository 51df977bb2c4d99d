package token

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func newIssuer(t testing.TB, mesh string, revoked func(string) bool) *Issuer {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	i, err := New(Options{Mesh: mesh, Key: k, Revoked: revoked})
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// forge signs arbitrary header and claims with i's key.
func forge(t *testing.T, i *Issuer, h, p any) string {
	t.Helper()
	hb, _ := json.Marshal(h)
	pb, _ := json.Marshal(p)
	tok, err := i.sign(b64.EncodeToString(hb) + "." + b64.EncodeToString(pb))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func goodPayload(i *Issuer) payload {
	now := time.Now().Unix()
	return payload{Iss: "trellis", Aud: Audience, Mesh: i.mesh, Service: "web", Jti: strings.Repeat("ab", 16), Iat: now, Exp: now + 3600}
}

func TestIssueVerify(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		i := newIssuer(t, "default", nil)
		tok, claims, err := i.Issue("default", "web", 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := i.Verify(tok)
		if err != nil {
			t.Fatal(err)
		}
		if got != claims || got.Mesh != "default" || got.Service != "web" || len(got.ID) != 32 {
			t.Fatalf("Verify = %+v, Issue said %+v", got, claims)
		}
		if want := time.Now().Add(DefaultTTL); !got.Expiry.Equal(want) {
			t.Errorf("expiry %v, want %v", got.Expiry, want)
		}
		mesh, err := MeshOf(tok)
		if err != nil || mesh != "default" {
			t.Errorf("MeshOf = %q, %v", mesh, err)
		}
		_, other, _ := i.Issue("default", "web", 0)
		if other.ID == claims.ID {
			t.Error("two tokens share an ID")
		}
	})
}

func TestIssueRejects(t *testing.T) {
	i := newIssuer(t, "default", nil)
	tests := []struct {
		name, mesh, service string
		ttl                 time.Duration
		want                string
	}{
		{"other mesh", "prod", "web", 0, `the issuer of mesh "default" cannot issue for mesh "prod"`},
		{"bad service", "default", "a/b", 0, `service "a/b"`},
		{"negative ttl", "default", "web", -time.Hour, "must not be negative"},
		{"ttl too long", "default", "web", 11 * 365 * 24 * time.Hour, "at most"},
		{"sub-second ttl", "default", "web", time.Millisecond, "at least 1s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := i.Issue(tc.mesh, tc.service, tc.ttl)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	i := newIssuer(t, "default", nil)
	tok, _, err := i.Issue("default", "web", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	otherMesh := newIssuer(t, "prod", nil)
	otherTok, _, _ := otherMesh.Issue("prod", "web", time.Hour)
	sameMeshOtherKey := newIssuer(t, "default", nil)
	stolenKeyTok, _, _ := sameMeshOtherKey.Issue("default", "web", time.Hour)
	hdr := header{Alg: "ES256", Typ: "JWT", Kid: i.kid}
	p := goodPayload(i)

	// Payload with another service, keeping the original signature.
	tampered := func() string {
		pp := p
		pp.Service = "admin"
		pb, _ := json.Marshal(pp)
		return parts[0] + "." + b64.EncodeToString(pb) + "." + parts[2]
	}()
	// HS256 keyed with the public key: the classic algorithm confusion.
	confusion := func() string {
		hb, _ := json.Marshal(header{Alg: "HS256", Typ: "JWT", Kid: i.kid})
		pb, _ := json.Marshal(p)
		input := b64.EncodeToString(hb) + "." + b64.EncodeToString(pb)
		pub, _ := x509.MarshalPKIXPublicKey(&i.key.PublicKey)
		m := hmac.New(sha256.New, pub)
		m.Write([]byte(input))
		return input + "." + b64.EncodeToString(m.Sum(nil))
	}()
	none := func() string {
		hb, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT", "kid": i.kid})
		pb, _ := json.Marshal(p)
		return b64.EncodeToString(hb) + "." + b64.EncodeToString(pb) + "."
	}()
	flipSig := []byte(parts[2])
	flipSig[5] ^= 0x02
	with := func(f func(*payload)) payload { pp := p; f(&pp); return pp }

	tests := []struct{ name, tok, want string }{
		{"empty", "", "1 dot-separated parts"},
		{"four parts", tok + ".x", "4 dot-separated parts"},
		{"tampered claims", tampered, "signature does not verify"},
		{"tampered signature", parts[0] + "." + parts[1] + "." + string(flipSig), "signature"},
		{"alg none", none, `algorithm "none" not accepted`},
		{"alg confusion HS256", confusion, `algorithm "HS256" not accepted`},
		{"ES384 header", forge(t, i, header{Alg: "ES384", Typ: "JWT", Kid: i.kid}, p), `algorithm "ES384"`},
		{"padded base64", parts[0] + "=." + parts[1] + "." + parts[2], "header: not canonical base64url"},
		{"another mesh's token", otherTok, "signed by key"},
		{"same mesh name, other key", stolenKeyTok, "signed by key"},
		{"header field added", forge(t, i, map[string]any{"alg": "ES256", "typ": "JWT", "kid": i.kid, "crit": []string{"x"}}, p), `unknown field "crit"`},
		{"wrong typ", forge(t, i, header{Alg: "ES256", Typ: "at+jwt", Kid: i.kid}, p), `typ "at+jwt"`},
		{"wrong audience", forge(t, i, hdr, with(func(p *payload) { p.Aud = "someone-else" })), `audience "someone-else"`},
		{"wrong issuer", forge(t, i, hdr, with(func(p *payload) { p.Iss = "x" })), `issuer "x"`},
		{"mesh claim differs from the key's mesh", forge(t, i, hdr, with(func(p *payload) { p.Mesh = "prod" })), `mesh "prod", want "default"`},
		{"claim field added", forge(t, i, hdr, map[string]any{"iss": "trellis", "aud": Audience, "mesh": "default", "service": "web", "jti": p.Jti, "iat": p.Iat, "exp": p.Exp, "admin": true}), `unknown field "admin"`},
		{"short jti", forge(t, i, hdr, with(func(p *payload) { p.Jti = "abc" })), "jti"},
		{"exp before iat", forge(t, i, hdr, with(func(p *payload) { p.Exp = p.Iat - 1 })), "want 0 < iat < exp"},
		{"bad service", forge(t, i, hdr, with(func(p *payload) { p.Service = "../x" })), `service "../x"`},
		{"issued in the future", forge(t, i, hdr, with(func(p *payload) { p.Iat += 3600; p.Exp += 7200 })), "issued in the future"},
		{"oversized", strings.Repeat("a", maxTokenLen+1), "bytes, at most"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := i.Verify(tc.tok)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to contain %q", err, tc.want)
			}
			if !errors.Is(err, ErrInvalidToken) {
				t.Errorf("err %v does not wrap ErrInvalidToken", err)
			}
		})
	}
}

func TestExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		i := newIssuer(t, "default", nil)
		tok, c, err := i.Issue("default", "web", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour + 30*time.Second) // within the clock skew
		if _, err := i.Verify(tok); err != nil {
			t.Fatalf("within the skew allowance: %v", err)
		}
		time.Sleep(time.Minute)
		_, err = i.Verify(tok)
		if !errors.Is(err, ErrExpired) || errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), c.ID) {
			t.Fatalf("err %v, want ErrExpired naming the token", err)
		}
	})
}

func TestRevoked(t *testing.T) {
	revoked := map[string]bool{}
	i := newIssuer(t, "default", func(id string) bool { return revoked[id] })
	tok, c, err := i.Issue("default", "web", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := i.Verify(tok); err != nil {
		t.Fatal(err)
	}
	revoked[c.ID] = true
	if _, err := i.Verify(tok); !errors.Is(err, ErrRevoked) {
		t.Fatalf("err %v, want ErrRevoked", err)
	}
}

func TestKeyRoundTrip(t *testing.T) {
	k, _ := GenerateKey()
	data, err := MarshalKey(k)
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalKey(data)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Equal(k) {
		t.Fatal("key changed in the round trip")
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := New(Options{Mesh: "m", Key: p384}); err == nil || !strings.Contains(err.Error(), "P-384") {
		t.Errorf("P-384 key: %v", err)
	}
	if _, err := New(Options{Mesh: "", Key: k}); err == nil {
		t.Error("empty mesh accepted")
	}
	d384, _ := MarshalKey(p384)
	for _, bad := range []string{`{"key":""}`, `{"key":"x","y":1}`, string(d384)} {
		if _, err := UnmarshalKey([]byte(bad)); err == nil {
			t.Errorf("UnmarshalKey(%.40s) accepted", bad)
		}
	}
}

func FuzzVerify(f *testing.F) {
	i := newIssuer(f, "default", nil)
	tok, _, _ := i.Issue("default", "web", time.Hour)
	f.Add(tok)
	f.Add(strings.Replace(tok, ".", "..", 1))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := i.Verify(s)
		if err == nil && (c.Mesh != "default" || c.Service == "" || len(c.ID) != 32) {
			t.Fatalf("accepted %q with claims %+v", s, c)
		}
		if err != nil && !errors.Is(err, ErrInvalidToken) && !errors.Is(err, ErrExpired) && !errors.Is(err, ErrRevoked) {
			t.Fatalf("error %v wraps no sentinel", err)
		}
		_, _ = MeshOf(s)
	})
}

func BenchmarkVerify(b *testing.B) {
	i := newIssuer(b, "default", func(string) bool { return false })
	tok, _, _ := i.Issue("default", "web", time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := i.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}
