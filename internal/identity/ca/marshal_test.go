package ca

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

func TestMarshalRoundTrip(t *testing.T) {
	c := generate(t, GenerateOptions{})
	data, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]string
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc["key"], "-----BEGIN PRIVATE KEY-----") || !strings.HasPrefix(doc["chain"], "-----BEGIN CERTIFICATE-----") || doc["trustDomain"] != "example.org" {
		t.Fatalf("stored document %v: want PKCS#8 key, PEM chain, trust domain", doc)
	}
	back, err := Unmarshal(data, Options{})
	if err != nil {
		t.Fatal(err)
	}
	id := mustID(t, granted)
	chain, err := back.Sign(uriCSR(t, newKey(t), granted), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := x509svid.Verify(chain, c.Bundle().X509()); err != nil {
		t.Fatalf("a leaf of the reloaded CA does not verify under the original bundle: %v", err)
	}
}

func TestUnmarshalRejects(t *testing.T) {
	c := generate(t, GenerateOptions{})
	good, _ := Marshal(c)
	other, _ := Marshal(generate(t, GenerateOptions{}))
	var g, o map[string]string
	_ = json.Unmarshal(good, &g)
	_ = json.Unmarshal(other, &o)
	swap, _ := json.Marshal(map[string]string{"trustDomain": "example.org", "chain": g["chain"], "key": o["key"]})
	tests := []struct{ name, data, want string }{
		{"unknown field", strings.Replace(string(good), `{`, `{"extra":1,`, 1), `unknown field "extra"`},
		{"trailing data", string(good) + "{}", "trailing data"},
		{"bad trust domain", strings.Replace(string(good), `"example.org"`, `"Example.org"`, 1), "trustDomain"},
		{"key of another CA", string(swap), "key does not match"},
		{"no chain", `{"trustDomain":"example.org","chain":"","key":""}`, "no CERTIFICATE PEM block"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Unmarshal([]byte(tc.data), Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// A stored CA that has expired still loads, so it can be rotated away
// from; only signing fails.
func TestUnmarshalExpired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := generate(t, GenerateOptions{Validity: time.Hour})
		data, _ := Marshal(c)
		time.Sleep(2 * time.Hour)
		back, err := Unmarshal(data, Options{})
		if err != nil {
			t.Fatalf("expired CA does not load: %v", err)
		}
		if _, err := back.Sign(uriCSR(t, newKey(t), granted), mustID(t, granted), 0); err == nil || !strings.Contains(err.Error(), "issuer expired") {
			t.Fatalf("Sign: %v, want issuer expired", err)
		}
		chainPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Root().Raw})
		keyDER, _ := x509.MarshalPKCS8PrivateKey(c.key)
		if _, err := Parse(td, chainPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), Options{}); err == nil || !strings.Contains(err.Error(), "expired at") {
			t.Fatalf("Parse of an expired root: %v, want expired", err)
		}
	})
}

func TestParsePEM(t *testing.T) {
	root, inter, key := externalPKI(t, certOpts{})
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: inter.Raw}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw})...)
	sec1, _ := x509.MarshalECPrivateKey(key)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(key)
	for _, k := range []*pem.Block{{Type: "EC PRIVATE KEY", Bytes: sec1}, {Type: "PRIVATE KEY", Bytes: pkcs8}} {
		c, err := Parse(td, chain, pem.EncodeToMemory(k), Options{})
		if err != nil {
			t.Fatalf("%s: %v", k.Type, err)
		}
		if c.Root() != nil && !c.Bundle().Contains(root) {
			t.Fatalf("%s: bundle lacks the root", k.Type)
		}
	}
	dir := t.TempDir()
	writeFile(t, dir+"/chain.pem", chain)
	writeFile(t, dir+"/key.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}))
	if _, err := LoadFiles(td, dir+"/chain.pem", dir+"/key.pem", Options{}); err != nil {
		t.Fatalf("LoadFiles: %v", err)
	}
	if _, err := LoadFiles(td, dir+"/missing.pem", dir+"/key.pem", Options{}); err == nil || !strings.Contains(err.Error(), "certificate chain") {
		t.Fatalf("LoadFiles of a missing chain: %v", err)
	}
	bad := []struct{ name, chain, key, want string }{
		{"key in chain", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})), "", `PEM block 0 is "PRIVATE KEY", want CERTIFICATE`},
		{"no key", string(chain), "", "key: no PEM block"},
		{"wrong key type", string(chain), string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkcs8})), `PEM block "PUBLIC KEY"`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(td, []byte(tc.chain), []byte(tc.key), Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
