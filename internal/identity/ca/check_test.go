package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

const granted = "spiffe://example.org/default/a"

func ecKey(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func rsaKey(t testing.TB, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ext(t testing.TB, oid asn1.ObjectIdentifier, v any) pkix.Extension {
	t.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oid, Value: b}
}

// sanExt builds a subjectAltName from raw GeneralNames.
func sanExt(t testing.TB, names ...asn1.RawValue) pkix.Extension {
	t.Helper()
	var body []byte
	for _, n := range names {
		b, err := asn1.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		body = append(body, b...)
	}
	return ext(t, oidSubjectAltName, asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: body})
}

func uriName(s string) asn1.RawValue {
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte(s)}
}

func TestCheckCSR(t *testing.T) {
	id := mustID(t, granted)
	p256 := newKey(t)
	uris := func(s ...string) *x509.CertificateRequest { return uriCSR(t, p256, s...) }
	with := func(tmpl *x509.CertificateRequest) *x509.CertificateRequest {
		tmpl.URIs = uris(granted).URIs
		return makeCSR(t, p256, tmpl)
	}
	badSig := func() *x509.CertificateRequest {
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: uris(granted).URIs}, p256)
		if err != nil {
			t.Fatal(err)
		}
		der[len(der)-3] ^= 0x01 // inside the signature's integers
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil {
			t.Fatal(err)
		}
		return csr
	}
	otherName := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true,
		Bytes: append(mustMarshal(t, asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3}), mustMarshal(t, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: mustMarshal(t, "admin@corp")})...)}
	tests := []struct {
		name     string
		csr      *x509.CertificateRequest
		want     string // "" accepts
		mismatch bool
	}{
		{"P-256", uris(granted), "", false},
		{"P-384", uriCSR(t, ecKey(t, elliptic.P384()), granted), "", false},
		{"RSA 2048", uriCSR(t, rsaKey(t, 2048), granted), "", false},
		{"Ed25519", uriCSR(t, ed25519Key(t), granted), "", false},
		{"subject is ignored", with(&x509.CertificateRequest{Subject: pkix.Name{CommonName: "anything"}}), "", false},
		{"nil", nil, "csr: missing", false},
		{"wrong URI", uris("spiffe://example.org/default/b"), `csr: URI SAN "spiffe://example.org/default/b" does not match the granted identity "spiffe://example.org/default/a"`, true},
		{"other trust domain", uris("spiffe://evil.org/default/a"), "does not match the granted identity", true},
		{"not SPIFFE", uris("https://example.org/default/a"), "does not match the granted identity", true},
		{"two URI SANs", uris(granted, "spiffe://example.org/default/b"), "2 URI SANs requested; want exactly one", false},
		{"same URI twice", uris(granted, granted), "2 URI SANs requested", false},
		{"no SAN", makeCSR(t, p256, &x509.CertificateRequest{Subject: pkix.Name{CommonName: granted}}), "no subjectAltName", false},
		{"extra DNS SAN", with(&x509.CertificateRequest{DNSNames: []string{"a.example.org"}}), "DNS SAN requested", false},
		{"extra IP SAN", with(&x509.CertificateRequest{IPAddresses: []net.IP{net.IPv4(10, 0, 0, 1)}}), "IP SAN requested", false},
		{"extra email SAN", with(&x509.CertificateRequest{EmailAddresses: []string{"a@example.org"}}), "email SAN requested", false},
		{"other-name SAN Go does not parse", makeCSR(t, p256, &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{sanExt(t, uriName(granted), otherName)}}), "other name SAN requested", false},
		{"bad signature", badSig(), "csr: signature:", false},
		{"RSA 1024", uriCSR(t, rsaKey(t, 1024), granted), "RSA key of 1024 bits", false},
		{"P-224", uriCSR(t, ecKey(t, elliptic.P224()), granted), "ECDSA curve P-224", false},
		{"P-521", uriCSR(t, ecKey(t, elliptic.P521()), granted), "ECDSA curve P-521", false},
		{"CA:true requested", with(&x509.CertificateRequest{ExtraExtensions: []pkix.Extension{ext(t, asn1.ObjectIdentifier{2, 5, 29, 19}, struct{ IsCA bool }{true})}}), "extension 2.5.29.19 (basicConstraints) requested", false},
		{"key usage requested", with(&x509.CertificateRequest{ExtraExtensions: []pkix.Extension{ext(t, asn1.ObjectIdentifier{2, 5, 29, 15}, asn1.BitString{Bytes: []byte{0x04}, BitLength: 6})}}), "extension 2.5.29.15 (keyUsage) requested", false},
		{"unknown extension requested", with(&x509.CertificateRequest{ExtraExtensions: []pkix.Extension{ext(t, asn1.ObjectIdentifier{1, 2, 3, 4}, true)}}), "extension 1.2.3.4 requested", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckCSR(tc.csr, id)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to contain %q", err, tc.want)
			}
			if !errors.Is(err, ErrCSR) {
				t.Errorf("err %v does not wrap ErrCSR", err)
			}
			if got := errors.Is(err, ErrIdentityMismatch); got != tc.mismatch {
				t.Errorf("errors.Is(err, ErrIdentityMismatch) = %v, want %v", got, tc.mismatch)
			}
		})
	}
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ed25519Key(t testing.TB) crypto.Signer {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// A signed leaf never carries more than the CSR's key and the checked URI,
// whatever else the CSR held (fuzzed DER included).
func FuzzSign(f *testing.F) {
	c := generate(f, GenerateOptions{})
	id := mustID(f, granted)
	key := newKey(f)
	for _, csr := range []*x509.CertificateRequest{
		uriCSR(f, key, granted),
		uriCSR(f, key, "spiffe://example.org/default/b"),
		uriCSR(f, key, granted, granted),
		makeCSR(f, key, &x509.CertificateRequest{URIs: uriCSR(f, key, granted).URIs, DNSNames: []string{"x"}}),
		uriCSR(f, ed25519Key(f), granted),
	} {
		f.Add(csr.Raw)
	}
	bundle := c.Bundle().X509()
	f.Fuzz(func(t *testing.T, der []byte) {
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil {
			return
		}
		chain, err := c.Sign(csr, id, time.Hour)
		if err != nil {
			if !errors.Is(err, ErrCSR) {
				t.Fatalf("rejection %v does not wrap ErrCSR", err)
			}
			return
		}
		leaf := chain[0]
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != granted || len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 || leaf.IsCA {
			t.Fatalf("issued URIs %v DNS %v IP %v email %v CA %v", leaf.URIs, leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses, leaf.IsCA)
		}
		if got, _, err := x509svid.Verify(chain, bundle); err != nil || got != id {
			t.Fatalf("issued leaf verifies as %v, %v", got, err)
		}
	})
}

func BenchmarkSign(b *testing.B) {
	c := generate(b, GenerateOptions{})
	id := mustID(b, granted)
	csr := uriCSR(b, newKey(b), granted)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Sign(csr, id, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckCSR(b *testing.B) {
	id := mustID(b, granted)
	csr := uriCSR(b, newKey(b), granted)
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckCSR(csr, id); err != nil {
			b.Fatal(err)
		}
	}
}
