package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// ErrCSR is wrapped by every rejection of a certificate signing request;
// the error's text names what is wrong. Test with errors.Is.
var ErrCSR = errors.New("csr rejected")

// ErrIdentityMismatch is wrapped (along with ErrCSR) when a CSR asks for a
// different identity than the one granted: a proxy asking for a name its
// token does not grant. The CSR service maps it to PermissionDenied.
var ErrIdentityMismatch = errors.New("csr asks for another identity")

type csrError struct {
	msg      string
	mismatch bool
}

func (e *csrError) Error() string { return "csr: " + e.msg }

func (e *csrError) Is(target error) bool {
	return target == ErrCSR || (e.mismatch && target == ErrIdentityMismatch)
}

func csrErrorf(format string, args ...any) error {
	return &csrError{msg: fmt.Sprintf(format, args...)}
}

var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// CheckCSR reports whether csr is acceptable for identity id, strictly:
//   - the CSR's signature verifies with its own public key (proof of
//     possession), and the key is ECDSA P-256/P-384, RSA 2048–8192 bits or
//     Ed25519;
//   - it requests exactly one extension, subjectAltName, holding exactly
//     one name, a URI equal to id: no DNS, IP, email, other-name, directory
//     or registered-ID names, no second URI;
//   - it requests no other extension (no basicConstraints, key usages, ...:
//     the CA decides those).
//
// The subject is ignored: issued leaves have an empty subject, as the
// X.509-SVID specification allows, and never copy anything from the CSR
// but its public key and the checked URI.
func CheckCSR(csr *x509.CertificateRequest, id spiffeid.ID) error {
	if csr == nil {
		return csrErrorf("missing")
	}
	if err := csr.CheckSignature(); err != nil {
		return csrErrorf("signature: %v", err)
	}
	if err := checkKeyType(csr.PublicKey); err != nil {
		return csrErrorf("public key: %v", err)
	}
	var san []byte
	for _, ext := range csr.Extensions {
		if !ext.Id.Equal(oidSubjectAltName) {
			return csrErrorf("extension %s requested; only subjectAltName is accepted", extensionName(ext.Id))
		}
		if san != nil {
			return csrErrorf("subjectAltName requested twice")
		}
		san = ext.Value
	}
	if san == nil {
		return csrErrorf("no subjectAltName: want one URI SAN %q", id)
	}
	if err := checkSANs(san); err != nil {
		return err
	}
	// checkSANs saw exactly one URI name; Go parsed it into csr.URIs.
	if len(csr.URIs) != 1 {
		return csrErrorf("URI SAN unparsable: want %q", id)
	}
	if got := csr.URIs[0].String(); got != id.String() {
		return &csrError{msg: fmt.Sprintf("URI SAN %q does not match the granted identity %q", got, id), mismatch: true}
	}
	return nil
}

// generalNameTag names GeneralName CHOICE tags (RFC 5280 §4.2.1.6).
var generalNameTag = [...]string{0: "other name", 1: "email", 2: "DNS", 3: "X.400 address", 4: "directory name", 5: "EDI party name", 6: "URI", 7: "IP", 8: "registered ID"}

// checkSANs parses the subjectAltName value itself rather than trusting
// x509's parsed fields, which silently drop name types Go does not model.
func checkSANs(der []byte) error {
	var seq asn1.RawValue
	rest, err := asn1.Unmarshal(der, &seq)
	if err != nil || len(rest) != 0 || seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence || !seq.IsCompound {
		return csrErrorf("subjectAltName: malformed")
	}
	uris := 0
	for names := seq.Bytes; len(names) > 0; {
		var n asn1.RawValue
		names, err = asn1.Unmarshal(names, &n)
		if err != nil || n.Class != asn1.ClassContextSpecific {
			return csrErrorf("subjectAltName: malformed name")
		}
		if n.Tag != 6 {
			kind := fmt.Sprintf("tag %d", n.Tag)
			if n.Tag >= 0 && n.Tag < len(generalNameTag) {
				kind = generalNameTag[n.Tag]
			}
			return csrErrorf("%s SAN requested; only one URI SAN is accepted", kind)
		}
		uris++
	}
	if uris != 1 {
		return csrErrorf("%d URI SANs requested; want exactly one", uris)
	}
	return nil
}

var extensionNames = map[string]string{
	"2.5.29.14": "subjectKeyIdentifier", "2.5.29.15": "keyUsage", "2.5.29.19": "basicConstraints",
	"2.5.29.30": "nameConstraints", "2.5.29.32": "certificatePolicies", "2.5.29.35": "authorityKeyIdentifier",
	"2.5.29.37": "extKeyUsage", "1.3.6.1.5.5.7.1.1": "authorityInfoAccess",
}

func extensionName(oid asn1.ObjectIdentifier) string {
	if n, ok := extensionNames[oid.String()]; ok {
		return oid.String() + " (" + n + ")"
	}
	return oid.String()
}

// Sign checks csr against id (CheckCSR) and issues a leaf for id, valid
// from now less the clock skew for ttl (0: the CA's LeafTTL), its NotAfter
// clamped to the chain's earliest expiry. The leaf has a random 128-bit
// serial, an empty subject with a critical subjectAltName holding only the
// URI (X.509-SVID §4), CA:false, key usage digitalSignature and
// keyEncipherment, and extended key usage serverAuth and clientAuth.
//
// The result is the chain a proxy presents: the leaf first, then the CA's
// certificates except the trust anchor (which peers hold in the bundle).
// The caller is responsible for id: Sign issues whatever identity it is
// told, provided the CSR asks for exactly that one.
func (c *CA) Sign(csr *x509.CertificateRequest, id spiffeid.ID, ttl time.Duration) ([]*x509.Certificate, error) {
	if !id.MemberOf(c.td) {
		return nil, fmt.Errorf("ca: identity %q is not in trust domain %q", id, c.td)
	}
	if ttl < 0 {
		return nil, fmt.Errorf("ca: ttl %v: must not be negative", ttl)
	}
	if ttl == 0 {
		ttl = c.opts.LeafTTL
	}
	if err := CheckCSR(csr, id); err != nil {
		return nil, err
	}
	return c.issue(csr.PublicKey, id, ttl)
}

func (c *CA) issue(pub crypto.PublicKey, id spiffeid.ID, ttl time.Duration) ([]*x509.Certificate, error) {
	now := time.Now()
	if !now.Before(c.notAfter) {
		return nil, fmt.Errorf("ca: issuer expired at %s; rotate the CA", c.notAfter.UTC().Format(time.RFC3339))
	}
	notBefore := now.Add(-c.opts.ClockSkew)
	if notBefore.Before(c.notBefore) {
		notBefore = c.notBefore
	}
	notAfter := now.Add(ttl)
	if notAfter.After(c.notAfter) {
		notAfter = c.notAfter
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		URIs:                  []*url.URL{id.URL()},
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.chain[0], pub, c.key)
	if err != nil {
		return nil, fmt.Errorf("ca: sign %q: %w", id, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: parse leaf %q: %w", id, err)
	}
	out := make([]*x509.Certificate, 0, len(c.chain))
	out = append(out, leaf)
	return append(out, c.chain[:len(c.chain)-1]...), nil
}
