package certclient

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/trellis-mesh/trellis/internal/identity/token"
)

// maxTokenFile bounds what FileToken reads: tokens are about 400 bytes.
const maxTokenFile = 16 << 10

// FileToken returns a Token function that reads the token from path on
// every call (surrounding white space trimmed). Its errors name the file:
// "token file /etc/trellis/token: empty".
func FileToken(path string) func() (string, error) {
	return func() (string, error) { return ReadToken(path) }
}

// ReadToken reads and sanity-checks a token file: it must exist, be
// readable, hold one non-empty token and look like a dataplane token (its
// signature is checked by the control plane, not here).
func ReadToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("token file %s: %w", path, unwrapPath(err))
	}
	defer f.Close()
	buf, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("token file %s: %w", path, unwrapPath(err))
	}
	if len(buf) > maxTokenFile {
		return "", fmt.Errorf("token file %s: larger than %d bytes; want one dataplane token", path, maxTokenFile)
	}
	tok := strings.TrimSpace(string(buf))
	if tok == "" {
		return "", fmt.Errorf("token file %s: empty", path)
	}
	if _, _, err := UnverifiedClaims(tok); err != nil {
		return "", fmt.Errorf("token file %s: %w", path, err)
	}
	return tok, nil
}

// unwrapPath drops the *PathError's own copy of the path.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// UnverifiedClaims returns the mesh and service a dataplane token claims,
// WITHOUT verifying it: only the control plane can. The proxy uses them to
// fail early on a file that holds no token, and to name its identity when
// the control plane cannot tell it (see the package documentation).
func UnverifiedClaims(tok string) (mesh, service string, err error) {
	if _, err := token.MeshOf(tok); err != nil {
		return "", "", err
	}
	parts := strings.Split(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", "", fmt.Errorf("%w: claims: not base64url", token.ErrInvalidToken)
	}
	var c struct {
		Mesh    string `json:"mesh"`
		Service string `json:"service"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return "", "", fmt.Errorf("%w: claims: %v", token.ErrInvalidToken, err)
	}
	if c.Service == "" {
		return "", "", fmt.Errorf("%w: claims: no service", token.ErrInvalidToken)
	}
	return c.Mesh, c.Service, nil
}
