package meshca_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/trellis-mesh/trellis/internal/control/meshca"
	"github.com/trellis-mesh/trellis/internal/identity/ca"
)

// A rotation walked through every phase with the REST API: the new root
// is trusted before it signs, proxies renewing move the leaf count, and
// the old root goes only once no leaf of it remains.
func TestRotationPhases(t *testing.T) {
	p := start(t, openStore(t), "a")
	ctx := ctxT(t)
	tok, err := p.api.CreateToken(ctx, "", "web", "")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var notified []string
	cancel := p.c.Identity().Subscribe(func(mesh string) { mu.Lock(); notified = append(notified, mesh); mu.Unlock() })
	defer cancel()
	webID := id(t, "spiffe://default.trellis.local/default/web")

	st, err := p.api.CAStatus(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != ca.PhaseStable || st.BundleRoots != 1 || st.Next != nil || st.Waiting != "" || st.TrustDomain != "default.trellis.local" {
		t.Fatalf("initial status: %+v", st)
	}
	oldRoot := rootsOf(t, p, "default")
	for _, node := range []string{"n1", "n2"} {
		if _, err := p.sign(t, tok.Token, node, webID); err != nil {
			t.Fatal(err)
		}
	}

	// Stable → AddNew: both roots trusted, the old CA signs.
	st = rotate(t, p, meshca.RotateRequest{}, ca.PhaseAddNew)
	if st.BundleRoots != 2 || st.Next == nil || st.Signer != "current" || !strings.Contains(st.Waiting, "acknowledge bundle "+st.BundleVersion) {
		t.Fatalf("AddNew status: %+v", st)
	}
	if _, v, _ := p.c.Identity().Bundle("default"); v != st.BundleVersion {
		t.Errorf("Bundle version %s, status says %s", v, st.BundleVersion)
	}
	poll(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(notified) > 0 && notified[len(notified)-1] == "default"
	}, "a bundle change notification")
	got, err := p.sign(t, tok.Token, "n1", webID)
	if err != nil {
		t.Fatal(err)
	}
	verify(t, got.chain, oldRoot, webID) // still signed by the old CA

	// AddNew → SignWithNew (no proxy connected, so none is behind).
	st = rotate(t, p, meshca.RotateRequest{}, ca.PhaseSignWithNew)
	if st.Signer != "next" || st.Progress.LeavesFromOld != 2 {
		t.Fatalf("SignWithNew status: %+v", st)
	}
	// n1 and n2 hold leaves of the old CA: RemoveOld must wait.
	_, err = p.api.RotateCA(ctx, meshca.RotateRequest{})
	if apiStatus(err) != http.StatusConflict || !strings.Contains(err.Error(), "2 leaves signed by the old CA remain") {
		t.Fatalf("advance with old leaves: %v", err)
	}
	var renewed []signed
	for _, node := range []string{"n1", "n2"} {
		got, err := p.sign(t, tok.Token, node, webID)
		if err != nil {
			t.Fatal(err)
		}
		renewed = append(renewed, got)
	}

	// SignWithNew → RemoveOld → Stable.
	st = rotate(t, p, meshca.RotateRequest{}, ca.PhaseRemoveOld)
	if st.BundleRoots != 1 || st.Next != nil {
		t.Fatalf("RemoveOld status: %+v", st)
	}
	st = rotate(t, p, meshca.RotateRequest{}, ca.PhaseStable)
	if st.Step != "rotation complete" {
		t.Errorf("step %q", st.Step)
	}
	newRoot := rootsOf(t, p, "default")
	if len(newRoot.X509Authorities()) != 1 || newRoot.X509Authorities()[0].Equal(oldRoot.X509Authorities()[0]) {
		t.Fatal("the final bundle is not the new root alone")
	}
	for _, r := range renewed {
		verify(t, r.chain, newRoot, webID)
		if _, _, err := x509svid.Verify(r.chain, oldRoot); err == nil {
			t.Error("a leaf of the new CA verifies against the old root")
		}
	}
	if _, err := p.api.RotateCA(ctx, meshca.RotateRequest{Abort: true}); apiStatus(err) != http.StatusConflict {
		t.Fatalf("abort in Stable: %v, want 409", err)
	}
}

// Abort returns to the old CA; force skips the wait for proxies; a CA
// cannot be swapped in mid-rotation.
func TestRotationAbortAndForce(t *testing.T) {
	p := start(t, openStore(t), "a")
	ctx := ctxT(t)
	if _, err := p.api.CreateToken(ctx, "", "web", ""); err != nil {
		t.Fatal(err)
	}
	before, err := p.api.CAStatus(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	rotate(t, p, meshca.RotateRequest{}, ca.PhaseAddNew)
	st := rotate(t, p, meshca.RotateRequest{Abort: true}, ca.PhaseStable)
	if st.BundleVersion != before.BundleVersion || *st.Current != *before.Current {
		t.Fatalf("after abort: %+v, before: %+v", st, before)
	}
	st = rotate(t, p, meshca.RotateRequest{Force: true}, ca.PhaseSignWithNew)
	if st.BundleRoots != 2 || !strings.Contains(st.Step, "forced") {
		t.Fatalf("forced: %+v", st)
	}
	certPEM, keyPEM := generatedPEM(t, "default.trellis.local")
	_, err = p.api.RotateCA(ctx, meshca.RotateRequest{Cert: certPEM, Key: keyPEM})
	if apiStatus(err) != http.StatusConflict || !strings.Contains(err.Error(), "rotation is in progress") {
		t.Fatalf("new CA mid-rotation: %v", err)
	}
	for _, bad := range []meshca.RotateRequest{{Force: true, Abort: true}, {Cert: certPEM}, {Mesh: "a/b"}} {
		if _, err := p.api.RotateCA(ctx, bad); apiStatus(err) != http.StatusBadRequest {
			t.Errorf("%+v: %v, want 400", bad, err)
		}
	}
}

// A user-provided intermediate becomes a mesh's first CA; leaves carry it
// in their chain and verify against its root. A CA for another trust
// domain is refused.
func TestUserProvidedIntermediate(t *testing.T) {
	p := start(t, openStore(t), "a")
	ctx := ctxT(t)
	if _, err := p.api.Apply(ctx, strings.NewReader("apiVersion: trellis.dev/v1alpha1\nkind: Mesh\nmetadata: {name: corp}\nspec: {trustDomain: corp.example}\n")); err != nil {
		t.Fatal(err)
	}
	wrongCert, wrongKey := generatedPEM(t, "other.example")
	if _, err := p.api.RotateCA(ctx, meshca.RotateRequest{Mesh: "corp", Cert: wrongCert, Key: wrongKey}); apiStatus(err) != http.StatusBadRequest {
		t.Fatalf("CA of another trust domain: %v, want 400", err)
	}
	chainPEM, keyPEM, root := intermediatePEM(t, "corp.example")
	st, err := p.api.RotateCA(ctx, meshca.RotateRequest{Mesh: "corp", Cert: chainPEM, Key: keyPEM})
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != ca.PhaseStable || !st.Current.Intermediate || st.Current.Subject != "CN=corp intermediate" || st.Current.Root != "CN=corp root" || !strings.Contains(st.Step, "installed") {
		t.Fatalf("installed: %+v", st)
	}
	tok, err := p.api.CreateToken(ctx, "corp", "db", "")
	if err != nil {
		t.Fatal(err)
	}
	dbID := id(t, "spiffe://corp.example/corp/db")
	got, err := p.sign(t, tok.Token, "", dbID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.chain) != 2 || got.chain[1].Subject.CommonName != "corp intermediate" {
		t.Fatalf("chain: %d certificates", len(got.chain))
	}
	verify(t, got.chain, x509bundle.FromX509Authorities(spiffeid.RequireTrustDomainFromString("corp.example"), []*x509.Certificate{root}), dbID)
	if _, err := p.api.CAStatus(ctx, "nosuch"); apiStatus(err) != http.StatusNotFound {
		t.Errorf("status of an unknown mesh: %v", err)
	}
}

// The ProxiesBehind seam holds a rotation in AddNew and RemoveOld.
func TestProxiesBehindHoldsRotation(t *testing.T) {
	behind := 3
	var mu sync.Mutex
	m, err := meshca.New(meshca.Options{Store: openStore(t), ProxiesBehind: func(mesh, version string) int {
		mu.Lock()
		defer mu.Unlock()
		return behind
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	if _, err := m.Rotate(ctx, meshca.RotateRequest{Mesh: "default"}); err != nil { // installs the first CA
		t.Fatal(err)
	}
	if st, err := m.Rotate(ctx, meshca.RotateRequest{Mesh: "default"}); err != nil || st.Phase != ca.PhaseAddNew || st.Progress.ProxiesBehind != 3 {
		t.Fatalf("begin: %+v, %v", st, err)
	}
	_, err = m.Rotate(ctx, meshca.RotateRequest{Mesh: "default"})
	if err == nil || !strings.Contains(err.Error(), "3 proxies have not acknowledged") {
		t.Fatalf("advance with proxies behind: %v", err)
	}
	mu.Lock()
	behind = 0
	mu.Unlock()
	for _, want := range []ca.Phase{ca.PhaseSignWithNew, ca.PhaseRemoveOld} {
		if st, err := m.Rotate(ctx, meshca.RotateRequest{Mesh: "default"}); err != nil || st.Phase != want {
			t.Fatalf("advance: %+v, %v; want %s", st, err, want)
		}
	}
	mu.Lock()
	behind = 1
	mu.Unlock()
	if _, err := m.Rotate(ctx, meshca.RotateRequest{Mesh: "default"}); err == nil || !strings.Contains(err.Error(), "without the old root") {
		t.Fatalf("RemoveOld with a proxy behind: %v", err)
	}
}

func rotate(t *testing.T, p *plane, req meshca.RotateRequest, want ca.Phase) meshca.CAStatus {
	t.Helper()
	st, err := p.api.RotateCA(ctxT(t), req)
	if err != nil {
		t.Fatalf("rotate to %s: %v", want, err)
	}
	if st.Phase != want || st.Step == "" {
		t.Fatalf("rotate: phase %s (step %q), want %s", st.Phase, st.Step, want)
	}
	got, err := p.api.CAStatus(ctxT(t), st.Mesh)
	if err != nil || got.Phase != want || got.BundleVersion != st.BundleVersion {
		t.Fatalf("status after rotate: %+v, %v", got, err)
	}
	return st
}

func rootsOf(t *testing.T, p *plane, mesh string) *x509bundle.Bundle {
	t.Helper()
	pemData, _, ok := p.c.Identity().Bundle(mesh)
	if !ok {
		t.Fatalf("no bundle for %s", mesh)
	}
	b, err := x509bundle.Parse(spiffeid.RequireTrustDomainFromString(mesh+".trellis.local"), pemData)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func generatedPEM(t *testing.T, td string) (cert, key string) {
	t.Helper()
	c, err := ca.Generate(spiffeid.RequireTrustDomainFromString(td), ca.GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := ca.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Chain, Key string }
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Chain, doc.Key
}

// intermediatePEM makes a root (path length 1) and an intermediate it
// signs; it returns the intermediate's chain (intermediate, root) and key
// as PEM, and the root.
func intermediatePEM(t *testing.T, td string) (chainPEM, keyPEM string, root *x509.Certificate) {
	t.Helper()
	now := time.Now()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "corp root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		MaxPathLen: 1, KeyUsage: x509.KeyUsageCertSign}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ = x509.ParseCertificate(rootDER)
	interKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	interTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "corp intermediate"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		MaxPathLen: 0, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign, PermittedURIDomains: []string{td}}
	interDER, err := x509.CreateCertificate(rand.Reader, interTmpl, root, interKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(interKey)
	chain := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: interDER})) +
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER}))
	return chain, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})), root
}

// Leaves issued by one replica hold a rotation driven through another:
// the issued-leaf records live in the shared store.
func TestLeavesFromOldAcrossReplicas(t *testing.T) {
	s := openStore(t)
	a, b := start(t, s, "a"), start(t, s, "b")
	ctx := ctxT(t)
	tok, err := a.api.CreateToken(ctx, "", "web", "")
	if err != nil {
		t.Fatal(err)
	}
	webID := id(t, "spiffe://default.trellis.local/default/web")
	if _, err := b.sign(t, tok.Token, "web-1", webID); err != nil {
		t.Fatal(err)
	}
	rotate(t, a, meshca.RotateRequest{}, ca.PhaseAddNew)
	rotate(t, a, meshca.RotateRequest{}, ca.PhaseSignWithNew)
	if _, err := a.api.RotateCA(ctx, meshca.RotateRequest{}); apiStatus(err) != http.StatusConflict || !strings.Contains(err.Error(), "1 leaves signed by the old CA remain") {
		t.Fatalf("advance on a with b's old leaf outstanding: %v", err)
	}
	// b signs with the new CA as soon as it reads the new state.
	renewed, err := b.sign(t, tok.Token, "web-1", webID)
	if err != nil {
		t.Fatal(err)
	}
	rotate(t, a, meshca.RotateRequest{}, ca.PhaseRemoveOld)
	verify(t, renewed.chain, rootsOf(t, a, "default"), webID)
}

// An expired leaf no longer holds a rotation, and its record is deleted.
func TestExpiredLeavesDoNotCount(t *testing.T) {
	s := openStore(t)
	p := startTTL(t, s, "a", 2*time.Second)
	ctx := ctxT(t)
	tok, err := p.api.CreateToken(ctx, "", "web", "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.sign(t, tok.Token, "web-1", id(t, "spiffe://default.trellis.local/default/web"))
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(got.chain[0].NotAfter); d > 2*time.Second {
		t.Fatalf("leaf lives %v, want at most 2s", d)
	}
	rotate(t, p, meshca.RotateRequest{}, ca.PhaseAddNew)
	st := rotate(t, p, meshca.RotateRequest{}, ca.PhaseSignWithNew)
	if st.Progress.LeavesFromOld != 1 {
		t.Fatalf("progress %+v, want 1 leaf from the old CA", st.Progress)
	}
	poll(t, func() bool {
		st, err := p.api.CAStatus(ctx, "default")
		return err == nil && st.Progress.LeavesFromOld == 0
	}, "the old leaf to expire")
	list, _, err := s.List(ctx, "Leaf")
	if err != nil || len(list) != 0 {
		t.Fatalf("leaf records after expiry: %d, %v", len(list), err)
	}
	rotate(t, p, meshca.RotateRequest{}, ca.PhaseRemoveOld)
}

// A Mesh naming CA files (spec.ca.type provided) gets that CA on first
// use and rotates to whatever the files hold at the next rotation; its
// spec.mtls.certificateTTL sets the leaves' lifetime.
func TestMeshProvidedCAFiles(t *testing.T) {
	p := start(t, openStore(t), "a")
	ctx := ctxT(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.key")
	writeCA := func() *x509.Certificate {
		chain, key, root := intermediatePEM(t, "corp.example")
		if err := os.WriteFile(certFile, []byte(chain), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, []byte(key), 0o600); err != nil {
			t.Fatal(err)
		}
		return root
	}
	root := writeCA()
	mesh := fmt.Sprintf(`apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata: {name: corp}
spec:
  trustDomain: corp.example
  mtls: {certificateTTL: 10m}
  ca: {type: provided, provided: {certFile: %q, keyFile: %q}}
`, certFile, keyFile)
	if _, err := p.api.Apply(ctx, strings.NewReader(mesh)); err != nil {
		t.Fatal(err)
	}
	tok, err := p.api.CreateToken(ctx, "corp", "db", "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := p.api.CAStatus(ctx, "corp")
	if err != nil || !st.Current.Intermediate {
		t.Fatalf("status: %+v, %v", st, err)
	}
	dbID := id(t, "spiffe://corp.example/corp/db")
	got, err := p.sign(t, tok.Token, "db-1", dbID)
	if err != nil {
		t.Fatal(err)
	}
	td := spiffeid.RequireTrustDomainFromString("corp.example")
	verify(t, got.chain, x509bundle.FromX509Authorities(td, []*x509.Certificate{root}), dbID)
	if d := time.Until(got.chain[0].NotAfter); d > 10*time.Minute || d < 9*time.Minute {
		t.Errorf("leaf lives %v, want the Mesh's 10m", d)
	}

	if _, err := p.api.RotateCA(ctx, meshca.RotateRequest{Mesh: "corp"}); apiStatus(err) != http.StatusConflict || !strings.Contains(err.Error(), "same root") {
		t.Fatalf("rotating to unchanged files: %v", err)
	}
	newRoot := writeCA()
	st = rotate(t, p, meshca.RotateRequest{Mesh: "corp"}, ca.PhaseAddNew)
	if st.Next == nil || !st.Next.Intermediate {
		t.Fatalf("AddNew: %+v", st)
	}
	pemData, _, _ := p.c.Identity().Bundle("corp")
	b, err := x509bundle.Parse(td, pemData)
	if err != nil || !b.HasX509Authority(newRoot) || !b.HasX509Authority(root) {
		t.Fatalf("bundle in AddNew lacks a root: %v", err)
	}
}
