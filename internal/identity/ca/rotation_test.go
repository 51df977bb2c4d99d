package ca

import (
	"crypto/x509"
	"encoding/json"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

func leafFrom(t *testing.T, s *State) []*x509.Certificate {
	t.Helper()
	chain, err := s.Signer().Sign(uriCSR(t, newKey(t), granted), mustID(t, granted), 0)
	if err != nil {
		t.Fatal(err)
	}
	return chain
}

func verifies(chain []*x509.Certificate, s *State) bool {
	_, _, err := x509svid.Verify(chain, s.Bundle().X509())
	return err == nil
}

// roundTrip stores and reloads s, as the control plane does between steps.
func roundTrip(t *testing.T, s *State) *State {
	t.Helper()
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalState(data, Options{})
	if err != nil {
		t.Fatalf("UnmarshalState(%s phase): %v", s.Phase(), err)
	}
	if back.Phase() != s.Phase() || back.Bundle().Version() != s.Bundle().Version() || !back.Signer().Root().Equal(s.Signer().Root()) {
		t.Fatalf("reloaded state differs: phase %s/%s bundle %s/%s", back.Phase(), s.Phase(), back.Bundle().Version(), s.Bundle().Version())
	}
	return back
}

func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err %v, want it to contain %q", err, want)
	}
}

func TestRotationWalk(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := generate(t, GenerateOptions{}), generate(t, GenerateOptions{})
		s := roundTrip(t, NewState(a))
		leafA := leafFrom(t, s)
		_, err := s.Advance(Progress{})
		wantErr(t, err, "nothing to advance in phase Stable")
		if s.Waiting() != "" {
			t.Errorf("Stable waits for %q", s.Waiting())
		}

		addNew, err := s.Begin(b)
		if err != nil {
			t.Fatal(err)
		}
		addNew = roundTrip(t, addNew)
		if addNew.Phase() != PhaseAddNew || !addNew.Signer().Root().Equal(a.Root()) || len(addNew.Bundle().Roots()) != 2 {
			t.Fatalf("AddNew: phase %s, signs with A %v, %d roots", addNew.Phase(), addNew.Signer().Root().Equal(a.Root()), len(addNew.Bundle().Roots()))
		}
		if addNew.Bundle().Version() == s.Bundle().Version() || !strings.Contains(addNew.Waiting(), addNew.Bundle().Version()) {
			t.Errorf("AddNew bundle version %s (was %s), waiting %q", addNew.Bundle().Version(), s.Bundle().Version(), addNew.Waiting())
		}
		_, err = addNew.Begin(generate(t, GenerateOptions{}))
		wantErr(t, err, "cannot begin in phase AddNew")
		_, err = addNew.Advance(Progress{ProxiesBehind: 2})
		wantErr(t, err, "2 proxies have not acknowledged bundle "+addNew.Bundle().Version())

		signNew, err := addNew.Advance(Progress{LeavesFromOld: 5}) // old leaves do not matter yet
		if err != nil {
			t.Fatal(err)
		}
		signNew = roundTrip(t, signNew)
		leafB := leafFrom(t, signNew)
		if signNew.Phase() != PhaseSignWithNew || !signNew.Signer().Root().Equal(b.Root()) {
			t.Fatalf("SignWithNew: phase %s, signs with B %v", signNew.Phase(), signNew.Signer().Root().Equal(b.Root()))
		}
		if !verifies(leafA, signNew) || !verifies(leafB, signNew) {
			t.Fatal("in SignWithNew, leaves of both CAs must verify")
		}
		_, err = signNew.Advance(Progress{LeavesFromOld: 3})
		wantErr(t, err, "3 leaves signed by the old CA remain")
		_, err = signNew.Abort()
		wantErr(t, err, "cannot abort in phase SignWithNew")
		_, err = signNew.Force(generate(t, GenerateOptions{}))
		wantErr(t, err, "cannot force in phase SignWithNew")

		removeOld, err := signNew.Advance(Progress{})
		if err != nil {
			t.Fatal(err)
		}
		removeOld = roundTrip(t, removeOld)
		if removeOld.Phase() != PhaseRemoveOld || verifies(leafA, removeOld) || !verifies(leafB, removeOld) {
			t.Fatalf("RemoveOld: phase %s; old leaf verifies %v, new leaf %v", removeOld.Phase(), verifies(leafA, removeOld), verifies(leafB, removeOld))
		}
		_, err = removeOld.Begin(generate(t, GenerateOptions{}))
		wantErr(t, err, "cannot begin in phase RemoveOld")
		_, err = removeOld.Advance(Progress{ProxiesBehind: 1})
		wantErr(t, err, "1 proxies have not acknowledged bundle")

		stable, err := removeOld.Advance(Progress{})
		if err != nil {
			t.Fatal(err)
		}
		stable = roundTrip(t, stable)
		if stable.Phase() != PhaseStable || !stable.Current().Root().Equal(b.Root()) || stable.Next() != nil || len(stable.CAs()) != 1 {
			t.Fatalf("final: phase %s, current is B %v", stable.Phase(), stable.Current().Root().Equal(b.Root()))
		}
	})
}

func TestRotationBeginRejects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := generate(t, GenerateOptions{})
		s := NewState(a)
		_, err := s.Begin(nil)
		wantErr(t, err, "no new CA")
		_, err = s.Begin(a)
		wantErr(t, err, "same root")
		other, err := Generate(spiffeid.RequireTrustDomainFromString("other.org"), GenerateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Begin(other)
		wantErr(t, err, `new CA is for trust domain "other.org", the mesh's is "example.org"`)

		short := generate(t, GenerateOptions{Validity: time.Hour})
		addNew, err := s.Begin(short)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Hour)
		_, err = addNew.Advance(Progress{})
		wantErr(t, err, "new CA expired at")
		_, err = s.Begin(short)
		wantErr(t, err, "new CA expired at")
		aborted, err := addNew.Abort()
		if err != nil {
			t.Fatal(err)
		}
		if aborted.Phase() != PhaseStable || !aborted.Signer().Root().Equal(a.Root()) || len(aborted.Bundle().Roots()) != 1 {
			t.Fatal("Abort does not return to Stable with the old CA alone")
		}
	})
}

// Recovery from an expired root: Force goes straight to signing with the
// new CA; the old CA's leaves are clamped to its expiry, so none remains
// and the old root can be dropped at once.
func TestRotationForceAfterExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := generate(t, GenerateOptions{Validity: time.Hour})
		s := NewState(a)
		time.Sleep(2 * time.Hour)
		if _, err := s.Signer().Sign(uriCSR(t, newKey(t), granted), mustID(t, granted), 0); err == nil {
			t.Fatal("the expired CA signed")
		}
		b := generate(t, GenerateOptions{})
		forced, err := s.Force(b)
		if err != nil {
			t.Fatal(err)
		}
		forced = roundTrip(t, forced)
		if forced.Phase() != PhaseSignWithNew {
			t.Fatalf("phase %s, want SignWithNew", forced.Phase())
		}
		leaf := leafFrom(t, forced)
		if !verifies(leaf, forced) {
			t.Fatal("a leaf of the new CA does not verify")
		}
		removeOld, err := forced.Advance(Progress{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := removeOld.Advance(Progress{}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestUnmarshalStateRejects(t *testing.T) {
	a, b := generate(t, GenerateOptions{}), generate(t, GenerateOptions{})
	other, err := Generate(spiffeid.RequireTrustDomainFromString("other.org"), GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	doc := func(phase Phase, cur, next *CA) string {
		d := map[string]any{"phase": phase}
		d["current"] = json.RawMessage(mustMarshalCA(t, cur))
		if next != nil {
			d["next"] = json.RawMessage(mustMarshalCA(t, next))
		}
		out, _ := json.Marshal(d)
		return string(out)
	}
	tests := []struct{ name, data, want string }{
		{"unknown phase", doc("Rotating", a, nil), `phase "Rotating"`},
		{"next in Stable", doc(PhaseStable, a, b), "next: must be absent in phase Stable"},
		{"next in RemoveOld", doc(PhaseRemoveOld, a, b), "next: must be absent in phase RemoveOld"},
		{"no next in AddNew", doc(PhaseAddNew, a, nil), "next: required in phase AddNew"},
		{"next of another trust domain", doc(PhaseSignWithNew, a, other), `trust domain "other.org" differs`},
		{"not JSON", "[", "ca state"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := UnmarshalState([]byte(tc.data), Options{})
			wantErr(t, err, tc.want)
		})
	}
}

func mustMarshalCA(t *testing.T, c *CA) []byte {
	t.Helper()
	b, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
