// Package token issues and verifies dataplane tokens: the credential a
// proxy presents to the control plane to prove which mesh Service it runs
// for, before the control plane's CA signs a certificate for that identity.
//
// A token is a JWS compact serialization (RFC 7515) signed with ES256
// (ECDSA P-256, SHA-256) by the mesh's token key:
//
//	header  {"alg":"ES256","typ":"JWT","kid":"<key ID>"}
//	claims  {"iss":"trellis","aud":"trellis-control-plane","mesh":"<mesh>",
//	         "service":"<service>","jti":"<32 hex digits>","iat":<unix>,"exp":<unix>}
//
// Verification is strict: the algorithm is pinned to ES256 (so "none" and
// algorithm-confusion tokens fail), the key ID must be the mesh's, the
// header and claims may hold no other field, base64 must be canonical, the
// audience and mesh must match, and expiry allows one minute of clock skew.
// Tokens are bearer credentials: whoever holds one can obtain certificates
// for its Service until it expires or is revoked.
//
// An Issuer is immutable and safe for concurrent use.
package token

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/trellis-mesh/trellis/internal/identity/spiffe"
)

// Sentinel errors of Verify; test with errors.Is. The error text says more.
var (
	// ErrInvalidToken: malformed, badly signed, for another audience or
	// mesh, or otherwise not a token this Issuer made.
	ErrInvalidToken = errors.New("invalid token")
	// ErrExpired: a valid token past its expiry (plus the clock skew).
	ErrExpired = errors.New("token expired")
	// ErrRevoked: a valid token whose ID the Revoked hook reports.
	ErrRevoked = errors.New("token revoked")
)

const (
	// Audience is the aud claim of every dataplane token.
	Audience = "trellis-control-plane"
	// Issuer is the iss claim of every dataplane token.
	issuerName = "trellis"
	// DefaultTTL is a token's lifetime when Issue is passed ttl 0: one
	// year. A token only lets a proxy obtain certificates, and revocation
	// takes effect at the next renewal (within a leaf lifetime), so a long
	// default suits proxies provisioned once; pass a shorter ttl
	// (`trellis token create --ttl`) for short-lived workloads.
	DefaultTTL = 365 * 24 * time.Hour
	// MaxTTL bounds the ttl Issue accepts: ten years.
	MaxTTL = 10 * 365 * 24 * time.Hour
	// ClockSkew is how far past its expiry a token is still accepted, and
	// how far in the future its issue time may be.
	ClockSkew = time.Minute
	// maxTokenLen bounds the input Verify parses.
	maxTokenLen = 4096
)

// Claims are what a token asserts, as Verify returns them.
type Claims struct {
	// Mesh and Service name the identity the token grants.
	Mesh, Service string
	// ID is the token's random 128-bit identifier (32 hex digits), the
	// key revocations are recorded under.
	ID string
	// IssuedAt and Expiry bound the token's validity (second precision).
	IssuedAt, Expiry time.Time
}

// Options configure an Issuer.
type Options struct {
	// Mesh is the mesh whose tokens the Issuer makes and accepts. Required.
	Mesh string
	// Key signs and verifies the tokens: ECDSA P-256, one per mesh
	// (GenerateKey; stored with MarshalKey). Required.
	Key *ecdsa.PrivateKey
	// Revoked reports whether the token with this ID was revoked. Nil
	// means none is. It is called on every Verify that gets that far, so
	// it should be a lookup in memory (the control plane keeps revocations
	// in its store and mirrors them).
	Revoked func(id string) bool
}

// Issuer makes and verifies one mesh's dataplane tokens.
type Issuer struct {
	mesh    string
	key     *ecdsa.PrivateKey
	kid     string
	header  string // encoded, fixed per key
	revoked func(string) bool
}

// New returns an Issuer.
func New(opts Options) (*Issuer, error) {
	if err := spiffe.CheckSegment("mesh", opts.Mesh); err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	if opts.Key == nil {
		return nil, errors.New("token: key: missing")
	}
	if opts.Key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("token: key: curve %s, want P-256 (ES256)", opts.Key.Curve.Params().Name)
	}
	der, err := x509.MarshalPKIXPublicKey(&opts.Key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("token: key: %w", err)
	}
	sum := sha256.Sum256(der)
	kid := hex.EncodeToString(sum[:8])
	h, _ := json.Marshal(header{Alg: "ES256", Typ: "JWT", Kid: kid}) // cannot fail
	return &Issuer{mesh: opts.Mesh, key: opts.Key, kid: kid, header: b64.EncodeToString(h), revoked: opts.Revoked}, nil
}

// KeyID returns the kid of the Issuer's key: 16 hex digits of the SHA-256
// of its public key.
func (i *Issuer) KeyID() string { return i.kid }

// Mesh returns the mesh the Issuer serves.
func (i *Issuer) Mesh() string { return i.mesh }

// GenerateKey returns a new ECDSA P-256 token key.
func GenerateKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

type keyDocument struct {
	Key string `json:"key"`
}

// MarshalKey encodes a token key as JSON, {"key": PKCS#8 PEM}, for the
// control plane's store. The key is in clear.
func MarshalKey(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("token: marshal key: %w", err)
	}
	return json.Marshal(keyDocument{Key: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))})
}

// UnmarshalKey decodes what MarshalKey wrote.
func UnmarshalKey(data []byte) (*ecdsa.PrivateKey, error) {
	var d keyDocument
	if err := strictJSON(data, &d); err != nil {
		return nil, fmt.Errorf("token: key document: %w", err)
	}
	b, _ := pem.Decode([]byte(d.Key))
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, errors.New("token: key document: key: want a PRIVATE KEY PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("token: key document: key: %w", err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("token: key document: key: %T, want ECDSA P-256", k)
	}
	return ek, nil
}
