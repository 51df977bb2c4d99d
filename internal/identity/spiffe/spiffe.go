// Package spiffe builds and parses Trellis workload identities, the SPIFFE
// IDs written into X.509-SVIDs. In universal mode a workload's identity is
//
//	spiffe://<trust-domain>/<mesh>/<service>
//
// one per mesh Service. Kubernetes identities
// (spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>) come later
// and will have their own constructor here.
//
// The functions are pure and safe for concurrent use.
package spiffe

import (
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Workload is the parsed form of a universal-mode identity.
type Workload struct {
	TrustDomain spiffeid.TrustDomain
	Mesh        string
	Service     string
}

// ID returns the SPIFFE ID of w (see ID).
func (w Workload) ID() (spiffeid.ID, error) {
	return ID(w.TrustDomain.Name(), w.Mesh, w.Service)
}

// ID returns spiffe://<trustDomain>/<mesh>/<service>. The error names the
// part at fault: "spiffe id: mesh "a/b": path segment characters are
// limited to ...". The trust domain is a lowercase DNS-like name (letters,
// digits, '.', '-', '_'); mesh and service are single path segments (letters,
// digits, '.', '-', '_'; not "." or "..").
func ID(trustDomain, mesh, service string) (spiffeid.ID, error) {
	td, err := TrustDomain(trustDomain)
	if err != nil {
		return spiffeid.ID{}, err
	}
	if err := CheckSegment("mesh", mesh); err != nil {
		return spiffeid.ID{}, err
	}
	if err := CheckSegment("service", service); err != nil {
		return spiffeid.ID{}, err
	}
	return spiffeid.FromSegments(td, mesh, service)
}

// TrustDomain parses a trust domain name ("mesh.trellis.local"). It refuses
// a SPIFFE ID or URI: pass the bare name.
func TrustDomain(name string) (spiffeid.TrustDomain, error) {
	if name == "" {
		return spiffeid.TrustDomain{}, fmt.Errorf("spiffe id: trust domain: must not be empty")
	}
	if strings.Contains(name, ":/") {
		return spiffeid.TrustDomain{}, fmt.Errorf("spiffe id: trust domain %q: must be a bare name, not a URI", name)
	}
	td, err := spiffeid.TrustDomainFromString(name)
	if err != nil {
		return spiffeid.TrustDomain{}, fmt.Errorf("spiffe id: trust domain %q: %w", name, err)
	}
	return td, nil
}

// Parse splits a universal-mode SPIFFE ID into its parts. It refuses any
// other shape ("spiffe://td/ns/x/sa/y", a missing service, extra segments)
// naming what is wrong.
func Parse(id string) (Workload, error) {
	sid, err := spiffeid.FromString(id)
	if err != nil {
		return Workload{}, fmt.Errorf("spiffe id %q: %w", id, err)
	}
	return FromID(sid)
}

// FromID is Parse for an already parsed ID.
func FromID(id spiffeid.ID) (Workload, error) {
	if id.IsZero() {
		return Workload{}, fmt.Errorf("spiffe id: must not be empty")
	}
	path := strings.TrimPrefix(id.Path(), "/")
	parts := strings.Split(path, "/")
	switch {
	case path == "":
		return Workload{}, fmt.Errorf("spiffe id %q: path: want /<mesh>/<service>, got none", id)
	case len(parts) == 1:
		return Workload{}, fmt.Errorf("spiffe id %q: service: missing (want /<mesh>/<service>)", id)
	case len(parts) > 2:
		return Workload{}, fmt.Errorf("spiffe id %q: path: %d segments, want /<mesh>/<service>", id, len(parts))
	}
	return Workload{TrustDomain: id.TrustDomain(), Mesh: parts[0], Service: parts[1]}, nil
}

// CheckSegment reports whether v can be the part ("mesh", "service") of a
// universal-mode identity: a non-empty SPIFFE path segment. The error names
// the part.
func CheckSegment(part, v string) error {
	if v == "" {
		return fmt.Errorf("spiffe id: %s: must not be empty", part)
	}
	if err := spiffeid.ValidatePathSegment(v); err != nil {
		return fmt.Errorf("spiffe id: %s %q: %w", part, v, err)
	}
	return nil
}
