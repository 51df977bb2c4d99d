// Package ca is a mesh's certificate authority: it issues X.509-SVIDs (leaf
// certificates whose only name is a SPIFFE ID) to proxies that sent a
// certificate signing request, and it holds the mesh's trust bundle and the
// staged rotation of its root.
//
// Where it sits: the control plane keeps one State per mesh in its store
// (kind "CA", namespace "", name = mesh; see State.MarshalJSON). Its CSR
// service verifies a dataplane token (package token), derives the identity
// the token grants (package spiffe) and calls State.Signer().Sign; proxies
// receive the chain and State.Bundle().
//
// Security model:
//   - Sign issues only the identity its caller passes; the CSR must ask for
//     exactly that URI SAN and nothing else (CheckCSR), so a proxy cannot
//     obtain a name its token does not grant.
//   - A generated root is name-constrained to URIs in its trust domain, so
//     even a misused root key cannot mint an identity another trust domain's
//     verifiers would accept through this root.
//   - Leaf lifetimes are clamped to the issuing chain: a leaf never outlives
//     its issuer.
//
// Concurrency: a CA and a State are immutable after construction; their
// methods are safe for concurrent use. Rotation methods return a new State.
package ca
