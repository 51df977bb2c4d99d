package token

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"time"

	"github.com/trellis-mesh/trellis/internal/identity/spiffe"
)

// b64 is unpadded base64url with canonical trailing bits (RFC 7515 §2), so
// one token has one encoding.
var b64 = base64.RawURLEncoding.Strict()

type header struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
	Kid string `json:"kid"`
}

type payload struct {
	Iss     string `json:"iss"`
	Aud     string `json:"aud"`
	Mesh    string `json:"mesh"`
	Service string `json:"service"`
	Jti     string `json:"jti"`
	Iat     int64  `json:"iat"`
	Exp     int64  `json:"exp"`
}

// Issue returns a token granting mesh/service for ttl (0: DefaultTTL), and
// its claims. mesh must be the Issuer's.
func (i *Issuer) Issue(mesh, service string, ttl time.Duration) (string, Claims, error) {
	if mesh != i.mesh {
		return "", Claims{}, fmt.Errorf("token: the issuer of mesh %q cannot issue for mesh %q", i.mesh, mesh)
	}
	if err := spiffe.CheckSegment("service", service); err != nil {
		return "", Claims{}, fmt.Errorf("token: %w", err)
	}
	switch {
	case ttl < 0:
		return "", Claims{}, fmt.Errorf("token: ttl %v: must not be negative", ttl)
	case ttl == 0:
		ttl = DefaultTTL
	case ttl > MaxTTL:
		return "", Claims{}, fmt.Errorf("token: ttl %v: at most %v", ttl, MaxTTL)
	case ttl < time.Second:
		return "", Claims{}, fmt.Errorf("token: ttl %v: at least 1s", ttl)
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", Claims{}, fmt.Errorf("token: id: %w", err)
	}
	now := time.Now().Truncate(time.Second)
	p := payload{Iss: issuerName, Aud: Audience, Mesh: mesh, Service: service, Jti: hex.EncodeToString(id[:]),
		Iat: now.Unix(), Exp: now.Add(ttl).Unix()}
	body, err := json.Marshal(p)
	if err != nil {
		return "", Claims{}, fmt.Errorf("token: %w", err)
	}
	tok, err := i.sign(i.header + "." + b64.EncodeToString(body))
	if err != nil {
		return "", Claims{}, err
	}
	return tok, p.claims(), nil
}

func (p payload) claims() Claims {
	return Claims{Mesh: p.Mesh, Service: p.Service, ID: p.Jti, IssuedAt: time.Unix(p.Iat, 0), Expiry: time.Unix(p.Exp, 0)}
}

// sign appends the ES256 signature to the signing input (RFC 7518 §3.4:
// R and S as 32-byte big-endian integers, concatenated).
func (i *Issuer) sign(input string) (string, error) {
	h := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, i.key, h[:])
	if err != nil {
		return "", fmt.Errorf("token: sign: %w", err)
	}
	var sig [64]byte
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + b64.EncodeToString(sig[:]), nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("token: "+format+": %w", append(args, ErrInvalidToken)...)
}

// Verify checks tok and returns its claims. Errors wrap ErrInvalidToken,
// ErrExpired or ErrRevoked, in that order of checking: an expired or
// revoked token has a valid signature.
func (i *Issuer) Verify(tok string) (Claims, error) {
	if len(tok) > maxTokenLen {
		return Claims{}, invalid("%d bytes, at most %d", len(tok), maxTokenLen)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return Claims{}, invalid("%d dot-separated parts, want 3 (JWS compact)", len(parts))
	}
	var h header
	if err := decodePart(parts[0], &h); err != nil {
		return Claims{}, invalid("header: %v", err)
	}
	if h.Alg != "ES256" {
		return Claims{}, invalid("algorithm %q not accepted; want ES256", h.Alg)
	}
	if h.Typ != "JWT" {
		return Claims{}, invalid("typ %q, want JWT", h.Typ)
	}
	if h.Kid != i.kid {
		return Claims{}, invalid("signed by key %q; mesh %q's key is %q", h.Kid, i.mesh, i.kid)
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return Claims{}, invalid("signature: want 64 bytes of base64url")
	}
	digest := sha256.Sum256([]byte(tok[:len(parts[0])+1+len(parts[1])]))
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(&i.key.PublicKey, digest[:], r, s) {
		return Claims{}, invalid("signature does not verify")
	}
	var p payload
	if err := decodePart(parts[1], &p); err != nil {
		return Claims{}, invalid("claims: %v", err)
	}
	switch {
	case p.Iss != issuerName:
		return Claims{}, invalid("issuer %q, want %q", p.Iss, issuerName)
	case p.Aud != Audience:
		return Claims{}, invalid("audience %q, want %q", p.Aud, Audience)
	case p.Mesh != i.mesh:
		return Claims{}, invalid("mesh %q, want %q", p.Mesh, i.mesh)
	case len(p.Jti) != 32 || !isHex(p.Jti):
		return Claims{}, invalid("jti %q: want 32 hex digits", p.Jti)
	case p.Iat <= 0 || p.Exp <= p.Iat:
		return Claims{}, invalid("iat %d, exp %d: want 0 < iat < exp", p.Iat, p.Exp)
	}
	if err := spiffe.CheckSegment("service", p.Service); err != nil {
		return Claims{}, invalid("%v", err)
	}
	c := p.claims()
	now := time.Now()
	if c.IssuedAt.After(now.Add(ClockSkew)) {
		return Claims{}, invalid("issued in the future (%s)", c.IssuedAt.UTC().Format(time.RFC3339))
	}
	if !now.Before(c.Expiry.Add(ClockSkew)) {
		return Claims{}, fmt.Errorf("token %s: expired at %s: %w", c.ID, c.Expiry.UTC().Format(time.RFC3339), ErrExpired)
	}
	if i.revoked != nil && i.revoked(c.ID) {
		return Claims{}, fmt.Errorf("token %s: %w", c.ID, ErrRevoked)
	}
	return c, nil
}

// MeshOf returns the mesh a token claims, WITHOUT verifying it: use it only
// to pick the Issuer that will Verify the token.
func MeshOf(tok string) (string, error) {
	if len(tok) > maxTokenLen {
		return "", invalid("%d bytes, at most %d", len(tok), maxTokenLen)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", invalid("%d dot-separated parts, want 3 (JWS compact)", len(parts))
	}
	var p payload
	if err := decodePart(parts[1], &p); err != nil {
		return "", invalid("claims: %v", err)
	}
	if p.Mesh == "" {
		return "", invalid("claims: no mesh")
	}
	return p.Mesh, nil
}

func decodePart(s string, v any) error {
	b, err := b64.DecodeString(s)
	if err != nil {
		return errors.New("not canonical base64url")
	}
	return strictJSON(b, v)
}

func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if err := dec.Decode(new(json.RawMessage)); err != io.EOF {
		return errors.New("trailing data after the JSON document")
	}
	return nil
}

func isHex(s string) bool {
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
