// Package identity ties a mesh's dataplane tokens to its CA: the Authority
// answers a proxy's certificate request by verifying the proxy's token and
// signing, for the identity that token grants and no other, the CSR the
// proxy sent. It also watches CA certificates for approaching expiry.
//
// Subpackages:
//   - spiffe: universal-mode SPIFFE IDs, spiffe://<trust-domain>/<mesh>/<service>
//   - ca: the per-mesh CA, the CSR check, the trust bundle, staged root rotation
//   - token: ES256 dataplane tokens
//   - csr: the proxy side: key and CSR
//   - rotate: the proxy side: background certificate renewal
//
// Data flow: proxy (csr.NewKey, csr.Build) → control plane gRPC CSR service
// → Authority.Issue (token.Issuer.Verify, spiffe.ID, ca.CA.Sign) → chain
// and bundle back to the proxy → csr.TLSCertificate → rotate.Rotator.
//
// An Authority is safe for concurrent use; it holds no state of its own
// beyond its options.
package identity
