package meshca

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/trellis-mesh/trellis/internal/identity/ca"
	"github.com/trellis-mesh/trellis/internal/store"
)

// CAInfo describes one CA of a mesh.
type CAInfo struct {
	// Subject is the signing certificate's subject; Root the trust
	// anchor's (equal for a self-signed root).
	Subject   string    `json:"subject"`
	Root      string    `json:"root"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	// Intermediate is true when the CA signs with an intermediate.
	Intermediate bool `json:"intermediate,omitempty"`
}

func infoOf(c *ca.CA) *CAInfo {
	cert := c.Certificate()
	return &CAInfo{Subject: cert.Subject.String(), Root: c.Root().Subject.String(), NotBefore: cert.NotBefore.UTC(),
		NotAfter: c.NotAfter().UTC(), Intermediate: len(c.Chain()) > 1}
}

// Progress is ca.Progress as the API shows it.
type Progress struct {
	ProxiesBehind int `json:"proxiesBehind"`
	LeavesFromOld int `json:"leavesFromOld"`
}

// CAStatus is a mesh's CA as `trellis ca status` shows it.
type CAStatus struct {
	Mesh        string   `json:"mesh"`
	TrustDomain string   `json:"trustDomain"`
	Phase       ca.Phase `json:"phase"`
	// Current is the established CA; Next the incoming one during AddNew
	// and SignWithNew.
	Current *CAInfo `json:"current"`
	Next    *CAInfo `json:"next,omitempty"`
	// Signer is "current" or "next": which one signs new leaves.
	Signer string `json:"signer"`
	// BundleVersion identifies the trusted roots (the SDS secret version).
	BundleVersion string `json:"bundleVersion"`
	BundleRoots   int    `json:"bundleRoots"`
	// Waiting is what the phase waits for before the next step ("" in
	// Stable), and Progress what this replica observes of it.
	Waiting  string   `json:"waiting,omitempty"`
	Progress Progress `json:"progress"`
	// Step is what the rotate request did (empty for a status request).
	Step string `json:"step,omitempty"`
}

func (m *Manager) status(ctx context.Context, mesh string, st *ca.State) (CAStatus, error) {
	p, err := m.Progress(ctx, mesh, st)
	if err != nil {
		return CAStatus{}, err
	}
	s := CAStatus{
		Mesh: mesh, TrustDomain: st.Current().TrustDomain().Name(), Phase: st.Phase(),
		Current: infoOf(st.Current()), Signer: "current",
		BundleVersion: st.Bundle().Version(), BundleRoots: len(st.Bundle().Roots()),
		Waiting: st.Waiting(), Progress: Progress(p),
	}
	if st.Next() != nil {
		s.Next = infoOf(st.Next())
	}
	if st.Phase() == ca.PhaseSignWithNew {
		s.Signer = "next"
	}
	return s, nil
}

// Status returns the mesh's CA status as stored now. A mesh without a CA
// yet is an error wrapping ErrNotReady (ErrUnknownMesh if no such mesh).
func (m *Manager) Status(ctx context.Context, mesh string) (CAStatus, error) {
	if err := checkMesh(mesh); err != nil {
		return CAStatus{}, err
	}
	st, _, err := m.loadCA(ctx, mesh)
	if errors.Is(err, store.ErrNotFound) {
		if _, err := m.trustDomain(ctx, mesh); err != nil {
			return CAStatus{}, err
		}
		return CAStatus{}, fmt.Errorf("mesh %q: %w: it is created with the first token (trellis token create) or by trellis ca rotate", mesh, ErrNotReady)
	}
	if err != nil {
		return CAStatus{}, err
	}
	return m.status(ctx, mesh, st)
}

// RotateRequest is one step of a CA rotation (POST /api/v1/ca/rotate).
type RotateRequest struct {
	Mesh string `json:"mesh"`
	// Force goes straight to SignWithNew from Stable or AddNew, without
	// waiting for proxies to trust the new root (for an expired or
	// compromised root).
	Force bool `json:"force,omitempty"`
	// Abort cancels a rotation in AddNew.
	Abort bool `json:"abort,omitempty"`
	// Cert and Key are the PEM chain (signing certificate first) and key
	// of a user-provided new root or intermediate; both absent means a
	// generated root. Only when a rotation begins, or when the mesh has no
	// CA yet (the CA is then installed as is).
	Cert string `json:"cert,omitempty"`
	Key  string `json:"key,omitempty"`
}

// Rotate takes one rotation step on the mesh's CA and returns the status
// after it:
//
//	no CA yet       install the given CA (or generate one): Stable
//	abort           AddNew → Stable (old CA)
//	Stable          begin: → AddNew with the new CA (force: → SignWithNew)
//	AddNew          advance → SignWithNew once every proxy trusts both roots (force: at once)
//	SignWithNew     advance → RemoveOld once no leaf from the old CA remains
//	RemoveOld       advance → Stable once every proxy has the bundle without the old root
//
// A step that is not possible yet or not allowed is an error wrapping
// ErrRotation that says what is pending. The new state is stored with a
// compare-and-swap: a concurrent step on another replica makes this one
// fail with store.ErrConflict.
func (m *Manager) Rotate(ctx context.Context, req RotateRequest) (CAStatus, error) {
	mesh := req.Mesh
	if err := checkMesh(mesh); err != nil {
		return CAStatus{}, err
	}
	if req.Abort && req.Force {
		return CAStatus{}, fmt.Errorf("%w: abort and force: choose one", ErrInvalid)
	}
	if (req.Cert == "") != (req.Key == "") {
		return CAStatus{}, fmt.Errorf("%w: cert and key: give both or neither", ErrInvalid)
	}
	td, spec, err := m.meshSpec(ctx, mesh)
	if err != nil {
		return CAStatus{}, err
	}
	var given *ca.CA
	if req.Cert != "" {
		if given, err = ca.Parse(td, []byte(req.Cert), []byte(req.Key), ca.Options{LeafTTL: m.opts.LeafTTL}); err != nil {
			return CAStatus{}, fmt.Errorf("%w: cert: %w", ErrInvalid, err)
		}
	}
	st, created, err := m.ensure(ctx, mesh, given)
	if err != nil {
		return CAStatus{}, err
	}
	if created {
		s, err := m.status(ctx, mesh, st)
		s.Step = "installed the mesh's first CA"
		return s, err
	}
	st, rev, err := m.loadCA(ctx, mesh)
	if err != nil {
		return CAStatus{}, err
	}
	if given != nil && st.Phase() != ca.PhaseStable && !(req.Force && st.Phase() == ca.PhaseAddNew) {
		return CAStatus{}, fmt.Errorf("%w: cert: a rotation is in progress (phase %s); a new CA can only be given to begin one", ErrRotation, st.Phase())
	}
	if given == nil && st.Phase() == ca.PhaseStable && !req.Abort {
		// Beginning: the files the Mesh names, or a generated root.
		if given, err = m.newCA(mesh, td, spec); err != nil {
			return CAStatus{}, err
		}
	}
	next, step, err := m.step(ctx, mesh, st, req, given)
	if err != nil {
		return CAStatus{}, fmt.Errorf("%w: %w", ErrRotation, err)
	}
	data, err := json.Marshal(next)
	if err != nil {
		return CAStatus{}, err
	}
	res, err := m.store.Update(ctx, caKey(mesh), data, rev)
	if err != nil {
		return CAStatus{}, fmt.Errorf("mesh %q: store CA: %w", mesh, err)
	}
	m.log.Info("CA rotation step", "mesh", mesh, "from", st.Phase(), "to", next.Phase(), "step", step)
	if next, err = m.remember(res); err != nil {
		return CAStatus{}, err
	}
	s, err := m.status(ctx, mesh, next)
	s.Step = step
	return s, err
}

// step computes the next state; given is the new CA when one begins (from
// the request, the Mesh's files or generated) or the one a forced step
// hurries to.
func (m *Manager) step(ctx context.Context, mesh string, st *ca.State, req RotateRequest, given *ca.CA) (*ca.State, string, error) {
	if req.Abort {
		next, err := st.Abort()
		return next, "aborted the rotation: the old CA stays", err
	}
	switch {
	case st.Phase() == ca.PhaseStable || (req.Force && st.Phase() == ca.PhaseAddNew):
		c := given // in AddNew, the CA given to hurry to, else the one added
		if c == nil {
			c = st.Next()
		}
		if req.Force {
			next, err := st.Force(c)
			return next, "forced: the new CA signs now, without waiting for proxies to trust it", err
		}
		next, err := st.Begin(c)
		return next, "began the rotation: both roots are trusted, the old CA still signs", err
	}
	p, err := m.Progress(ctx, mesh, st)
	if err != nil {
		return nil, "", err
	}
	next, err := st.Advance(p)
	if err != nil {
		return nil, "", err
	}
	switch next.Phase() {
	case ca.PhaseSignWithNew:
		return next, "the new CA signs; proxies renew onto it", nil
	case ca.PhaseRemoveOld:
		return next, "removed the old root from the bundle", nil
	}
	return next, "rotation complete", nil
}
