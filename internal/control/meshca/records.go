package meshca

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
	"github.com/trellis-mesh/trellis/internal/identity/ca"
	"github.com/trellis-mesh/trellis/internal/identity/spiffe"
	"github.com/trellis-mesh/trellis/internal/identity/token"
	"github.com/trellis-mesh/trellis/internal/store"
)

// Kinds of the store records.
const (
	kindCA       = "CA"
	kindTokenKey = "TokenKey"
	kindToken    = "Token"
)

func caKey(mesh string) store.Key       { return store.Key{Kind: kindCA, Name: mesh} }
func tokenKeyKey(mesh string) store.Key { return store.Key{Kind: kindTokenKey, Name: mesh} }
func tokenKey(mesh, id string) store.Key {
	return store.Key{Kind: kindToken, Namespace: mesh, Name: id}
}

// keyEntry is a mesh's token key.
type keyEntry struct{ key *ecdsa.PrivateKey }

func checkMesh(mesh string) error {
	if err := spiffe.CheckSegment("mesh", mesh); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// Ensure returns the mesh's CA state, creating the CA (a generated
// ECDSA P-256 root for the mesh's trust domain) and the token key first
// if the mesh has none. Two replicas racing both end up with the one
// that was stored first. Errors: ErrInvalid for a malformed name,
// ErrUnknownMesh when no Mesh object of that name exists.
func (m *Manager) Ensure(ctx context.Context, mesh string) (*ca.State, error) {
	st, _, err := m.ensure(ctx, mesh, nil)
	return st, err
}

// ensure is Ensure with the CA to install when the mesh has none (nil:
// generate one). It reports whether it created the CA.
func (m *Manager) ensure(ctx context.Context, mesh string, initial *ca.CA) (*ca.State, bool, error) {
	if err := checkMesh(mesh); err != nil {
		return nil, false, err
	}
	td, spec, err := m.meshSpec(ctx, mesh)
	if err != nil {
		return nil, false, err
	}
	if _, err := m.loadKey(ctx, mesh); errors.Is(err, store.ErrNotFound) {
		k, err := token.GenerateKey()
		if err != nil {
			return nil, false, err
		}
		data, err := token.MarshalKey(k)
		if err != nil {
			return nil, false, err
		}
		if _, err := m.store.Create(ctx, tokenKeyKey(mesh), data); err != nil && !errors.Is(err, store.ErrExists) {
			return nil, false, fmt.Errorf("mesh %q: store token key: %w", mesh, err)
		}
	} else if err != nil {
		return nil, false, err
	}
	st, _, err := m.loadCA(ctx, mesh)
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return st, false, err
	}
	if initial == nil {
		if initial, err = m.newCA(mesh, td, spec); err != nil {
			return nil, false, err
		}
	} else if initial.TrustDomain() != td {
		return nil, false, fmt.Errorf("%w: cert: the CA is for trust domain %q, mesh %q's is %q", ErrInvalid, initial.TrustDomain(), mesh, td)
	}
	data, err := json.Marshal(ca.NewState(initial))
	if err != nil {
		return nil, false, err
	}
	res, err := m.store.Create(ctx, caKey(mesh), data)
	if errors.Is(err, store.ErrExists) {
		st, _, err := m.loadCA(ctx, mesh) // another replica won the race
		return st, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("mesh %q: store CA: %w", mesh, err)
	}
	m.log.Info("created the mesh CA", "mesh", mesh, "trust_domain", td.Name(), "subject", initial.Certificate().Subject.String())
	st, err = m.remember(res)
	return st, true, err
}

// trustDomain returns the trust domain of mesh (see meshSpec).
func (m *Manager) trustDomain(ctx context.Context, mesh string) (spiffeid.TrustDomain, error) {
	td, _, err := m.meshSpec(ctx, mesh)
	return td, err
}

// meshSpec returns the trust domain of mesh, its Mesh object's
// spec.trustDomain or "<mesh>.trellis.local", and the Mesh's spec: nil
// for the implicit default mesh, which needs no Mesh object. Another mesh
// without a Mesh object is an error wrapping ErrUnknownMesh.
func (m *Manager) meshSpec(ctx context.Context, mesh string) (spiffeid.TrustDomain, *v1alpha1.MeshSpec, error) {
	name := mesh + v1alpha1.TrustDomainSuffix
	var spec *v1alpha1.MeshSpec
	res, err := m.store.Get(ctx, store.Key{Kind: v1alpha1.KindMesh, Name: mesh})
	switch {
	case errors.Is(err, store.ErrNotFound):
		if mesh != v1alpha1.DefaultMesh {
			return spiffeid.TrustDomain{}, nil, fmt.Errorf("%w %q: apply a Mesh of that name first", ErrUnknownMesh, mesh)
		}
	case err != nil:
		return spiffeid.TrustDomain{}, nil, err
	default:
		obj, err := v1alpha1.Decode(res.Value)
		if err != nil {
			return spiffeid.TrustDomain{}, nil, fmt.Errorf("mesh %q: %w", mesh, err)
		}
		if mo, ok := obj.(*v1alpha1.Mesh); ok {
			spec = &mo.Spec
			if spec.TrustDomain != "" {
				name = spec.TrustDomain
			}
		}
	}
	td, err := spiffe.TrustDomain(name)
	return td, spec, err
}

// newCA makes a CA for a mesh's first use or a rotation: the files its
// Mesh names (spec.ca.type provided), else a generated root.
func (m *Manager) newCA(mesh string, td spiffeid.TrustDomain, spec *v1alpha1.MeshSpec) (*ca.CA, error) {
	opts := ca.Options{LeafTTL: m.opts.LeafTTL}
	if spec != nil && spec.CA != nil && spec.CA.Type == v1alpha1.CAProvided && spec.CA.Provided != nil {
		c, err := ca.LoadFiles(td, spec.CA.Provided.CertFile, spec.CA.Provided.KeyFile, opts)
		if err != nil {
			return nil, fmt.Errorf("%w: mesh %q: spec.ca.provided: %w", ErrInvalid, mesh, err)
		}
		return c, nil
	}
	return ca.Generate(td, ca.GenerateOptions{Options: opts})
}

// leafTTL is the lifetime of the leaves issued to mesh's proxies: its
// Mesh's spec.mtls.certificateTTL, else Options.LeafTTL (0: the CA's
// default).
func (m *Manager) leafTTL(ctx context.Context, mesh string) time.Duration {
	if _, spec, err := m.meshSpec(ctx, mesh); err == nil && spec != nil && spec.MTLS != nil && spec.MTLS.CertificateTTL != nil {
		return spec.MTLS.CertificateTTL.Duration
	}
	return m.opts.LeafTTL
}

// loadCA reads the mesh's CA record, reusing the parsed state while its
// revision is unchanged. A missing record is an error wrapping
// store.ErrNotFound.
func (m *Manager) loadCA(ctx context.Context, mesh string) (*ca.State, int64, error) {
	res, err := m.store.Get(ctx, caKey(mesh))
	if err != nil {
		return nil, 0, err
	}
	st, err := m.remember(res)
	return st, res.Revision, err
}

// loadKey reads the mesh's token key, reusing the parsed key while its
// revision is unchanged.
func (m *Manager) loadKey(ctx context.Context, mesh string) (*ecdsa.PrivateKey, error) {
	res, err := m.store.Get(ctx, tokenKeyKey(mesh))
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	c, ok := m.keys[mesh]
	m.mu.Unlock()
	if ok && c.rev == res.Revision {
		return c.v.key, nil
	}
	k, err := token.UnmarshalKey(res.Value)
	if err != nil {
		return nil, fmt.Errorf("mesh %q: stored token key: %w", mesh, err)
	}
	m.mu.Lock()
	m.keys[mesh] = cached[*keyEntry]{rev: res.Revision, v: &keyEntry{key: k}}
	m.mu.Unlock()
	return k, nil
}
