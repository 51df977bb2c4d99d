package v1alpha1

import "time"

// Workload certificate lifetimes: the default and the bounds of a Mesh's
// spec.mtls.certificateTTL.
const (
	DefaultCertificateTTL = 24 * time.Hour
	MinCertificateTTL     = 5 * time.Minute
	MaxCertificateTTL     = 30 * 24 * time.Hour
)

// IdentityLabel is the Dataplane label whose value is its identity service
// when spec.identity is not set.
const IdentityLabel = "app"

// IdentityService returns the service whose workload identity dp has
// (spiffe://<trust domain>/<mesh>/<service>): spec.identity, else the
// label "app", else metadata.name. Only spec.identity is validated (a
// DNS-1123 label); a derived value is used as it is.
func IdentityService(dp *Dataplane) string {
	if dp.Spec.Identity != "" {
		return dp.Spec.Identity
	}
	if app := dp.Labels[IdentityLabel]; app != "" {
		return app
	}
	return dp.Name
}

// MTLSModeOf returns a mesh's effective mTLS mode: DISABLED without a Mesh
// object (m nil: the implicit "default" mesh, so setups without one keep
// working in plaintext), STRICT for a Mesh that does not say, else its
// spec.mtls.mode.
func MTLSModeOf(m *Mesh) MTLSMode {
	switch {
	case m == nil:
		return MTLSDisabled
	case m.Spec.MTLS == nil || m.Spec.MTLS.Mode == "":
		return MTLSStrict
	}
	return m.Spec.MTLS.Mode
}

// CertificateTTLOf returns the lifetime of a mesh's workload certificates:
// spec.mtls.certificateTTL, or DefaultCertificateTTL (also for m nil).
func CertificateTTLOf(m *Mesh) time.Duration {
	if m == nil || m.Spec.MTLS == nil || m.Spec.MTLS.CertificateTTL == nil {
		return DefaultCertificateTTL
	}
	return m.Spec.MTLS.CertificateTTL.Duration
}

// AccessDefaultOf returns what a mesh does with requests no AccessPolicy
// decides: spec.accessPolicy.default, or ALLOW (also for m nil).
func AccessDefaultOf(m *Mesh) AccessAction {
	if m == nil || m.Spec.AccessPolicy == nil || m.Spec.AccessPolicy.Default == "" {
		return AccessAllow
	}
	return m.Spec.AccessPolicy.Default
}

// TrustDomainOf returns the trust domain of the mesh named mesh, whose
// Mesh object is m (nil when there is none): spec.trustDomain, or
// "<mesh>.trellis.local".
func TrustDomainOf(mesh string, m *Mesh) string {
	if m != nil && m.Spec.TrustDomain != "" {
		return m.Spec.TrustDomain
	}
	return mesh + TrustDomainSuffix
}
