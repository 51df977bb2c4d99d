package meshca

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/trellis-mesh/trellis/internal/identity/spiffe"
	"github.com/trellis-mesh/trellis/internal/identity/token"
	"github.com/trellis-mesh/trellis/internal/store"
)

// TokenRecord is what the store keeps of a dataplane token (record
// Token/<mesh>/<id>), and what lists show: never the token itself, which
// is shown once, at creation.
type TokenRecord struct {
	ID       string    `json:"id"`
	Mesh     string    `json:"mesh"`
	Service  string    `json:"service"`
	IssuedAt time.Time `json:"issuedAt"`
	Expiry   time.Time `json:"expiry"`
	Revoked  bool      `json:"revoked"`
}

// IssuedToken is a new token and its record.
type IssuedToken struct {
	// Token is the bearer credential a proxy presents (TRELLIS_TOKEN_FILE).
	Token string `json:"token"`
	TokenRecord
}

// CreateToken issues a dataplane token granting mesh/service for ttl
// (0: token.DefaultTTL, one year) and records it. The mesh's CA and token
// key are created first if it has none. The Service need not exist yet:
// the identity is its name.
func (m *Manager) CreateToken(ctx context.Context, mesh, service string, ttl time.Duration) (IssuedToken, error) {
	if err := checkMesh(mesh); err != nil {
		return IssuedToken{}, err
	}
	if err := spiffe.CheckSegment("service", service); err != nil {
		return IssuedToken{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if ttl < 0 || ttl > token.MaxTTL || (ttl > 0 && ttl < time.Second) {
		return IssuedToken{}, fmt.Errorf("%w: ttl %v: want 1s to %v (0: %v)", ErrInvalid, ttl, token.MaxTTL, token.DefaultTTL)
	}
	if _, err := m.Ensure(ctx, mesh); err != nil {
		return IssuedToken{}, err
	}
	key, err := m.loadKey(ctx, mesh)
	if err != nil {
		return IssuedToken{}, err
	}
	iss, err := token.New(token.Options{Mesh: mesh, Key: key})
	if err != nil {
		return IssuedToken{}, err
	}
	tok, claims, err := iss.Issue(mesh, service, ttl)
	if err != nil {
		return IssuedToken{}, err
	}
	rec := TokenRecord{ID: claims.ID, Mesh: mesh, Service: service, IssuedAt: claims.IssuedAt.UTC(), Expiry: claims.Expiry.UTC()}
	data, err := json.Marshal(rec)
	if err != nil {
		return IssuedToken{}, err
	}
	if _, err := m.store.Create(ctx, tokenKey(mesh, rec.ID), data); err != nil {
		return IssuedToken{}, fmt.Errorf("store token %s: %w", rec.ID, err)
	}
	m.log.Info("dataplane token created", "mesh", mesh, "service", service, "id", rec.ID, "expiry", rec.Expiry)
	return IssuedToken{Token: tok, TokenRecord: rec}, nil
}

// ListTokens returns the records of mesh's tokens ("" for every mesh),
// ordered by mesh, service, issue time and id.
func (m *Manager) ListTokens(ctx context.Context, mesh string) ([]TokenRecord, error) {
	list, _, err := m.store.List(ctx, kindToken)
	if err != nil {
		return nil, err
	}
	out := []TokenRecord{}
	for _, res := range list {
		if mesh != "" && res.Key.Namespace != mesh {
			continue
		}
		rec, err := decodeToken(res)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	slices.SortFunc(out, func(a, b TokenRecord) int {
		return cmp.Or(cmp.Compare(a.Mesh, b.Mesh), cmp.Compare(a.Service, b.Service), a.IssuedAt.Compare(b.IssuedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

func decodeToken(res store.Resource) (TokenRecord, error) {
	var rec TokenRecord
	if err := json.Unmarshal(res.Value, &rec); err != nil {
		return rec, fmt.Errorf("stored token %s: %w", res.Key, err)
	}
	return rec, nil
}

// RevokeToken marks the token revoked: from the next certificate request
// on, on every replica sharing the store, it is refused. Certificates
// already issued with it stay valid until they expire (at most one leaf
// lifetime). mesh may be "" when the id is unique across meshes. Revoking
// twice is not an error. A missing token is an error wrapping
// store.ErrNotFound.
func (m *Manager) RevokeToken(ctx context.Context, mesh, id string) (TokenRecord, error) {
	if mesh == "" {
		list, err := m.ListTokens(ctx, "")
		if err != nil {
			return TokenRecord{}, err
		}
		var found []string
		for _, r := range list {
			if r.ID == id {
				found = append(found, r.Mesh)
			}
		}
		switch len(found) {
		case 0:
			return TokenRecord{}, fmt.Errorf("token %q: %w", id, store.ErrNotFound)
		case 1:
			mesh = found[0]
		default:
			return TokenRecord{}, fmt.Errorf("%w: token %q exists in meshes %v: name the mesh", ErrInvalid, id, found)
		}
	}
	k := tokenKey(mesh, id)
	if err := k.Validate(); err != nil {
		return TokenRecord{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	for {
		res, err := m.store.Get(ctx, k)
		if err != nil {
			return TokenRecord{}, fmt.Errorf("token %q in mesh %q: %w", id, mesh, err)
		}
		rec, err := decodeToken(res)
		if err != nil || rec.Revoked {
			return rec, err
		}
		rec.Revoked = true
		data, err := json.Marshal(rec)
		if err != nil {
			return TokenRecord{}, err
		}
		_, err = m.store.Update(ctx, k, data, res.Revision)
		if errors.Is(err, store.ErrConflict) {
			continue // changed meanwhile: read again
		}
		if err != nil {
			return TokenRecord{}, err
		}
		m.log.Info("dataplane token revoked", "mesh", mesh, "service", rec.Service, "id", id)
		return rec, nil
	}
}

// revoked reports whether the token id of mesh must be refused: revoked,
// or without a record (deleted). A store failure is returned as an error
// and counts as revoked (fail closed).
func (m *Manager) revoked(ctx context.Context, mesh, id string) (bool, error) {
	res, err := m.store.Get(ctx, tokenKey(mesh, id))
	if errors.Is(err, store.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return true, err
	}
	rec, err := decodeToken(res)
	if err != nil {
		return true, err
	}
	return rec.Revoked, nil
}
