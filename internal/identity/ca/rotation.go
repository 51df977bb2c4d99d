package ca

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Phase is a step of a staged CA rotation. A rotation from root A to root
// B walks
//
//	Stable(A) → AddNew(trust A+B, sign with A) → SignWithNew(trust A+B, sign with B)
//	          → RemoveOld(trust B, sign with B) → Stable(B)
//
// so the new root is trusted everywhere before anything is signed with it,
// and the old root is dropped only after no leaf it signed remains.
type Phase string

// The phases of a rotation.
const (
	// PhaseStable: one CA, trusted and signing. No rotation in progress.
	PhaseStable Phase = "Stable"
	// PhaseAddNew: both roots are trusted; the old CA still signs. Waits
	// for every proxy to acknowledge the two-root bundle.
	PhaseAddNew Phase = "AddNew"
	// PhaseSignWithNew: both roots are trusted; the new CA signs. Waits
	// for every leaf signed by the old CA to be renewed or to expire.
	PhaseSignWithNew Phase = "SignWithNew"
	// PhaseRemoveOld: only the new root is trusted and it signs. Waits for
	// every proxy to acknowledge the bundle without the old root.
	PhaseRemoveOld Phase = "RemoveOld"
)

// Progress is what the control plane observed, reported to Advance.
type Progress struct {
	// ProxiesBehind counts connected proxies that have not acknowledged
	// the current phase's bundle (State.Bundle().Version()).
	ProxiesBehind int
	// LeavesFromOld counts unexpired leaves signed by the old CA that
	// proxies still hold.
	LeavesFromOld int
}

// State is a mesh's CA: the CA that signs, the roots trusted, and how far
// a rotation has gone. The control plane keeps one per mesh in its store
// (MarshalJSON, UnmarshalState). A State is immutable; transitions return
// a new one, to be stored with the store's compare-and-swap.
type State struct {
	phase   Phase
	current *CA // the established CA; in RemoveOld, already the new one
	next    *CA // the incoming CA in AddNew and SignWithNew, else nil
}

// NewState returns Stable(c).
func NewState(c *CA) *State { return &State{phase: PhaseStable, current: c} }

// Phase returns the rotation phase.
func (s *State) Phase() Phase { return s.phase }

// Current returns the established CA (in RemoveOld, the new one).
func (s *State) Current() *CA { return s.current }

// Next returns the incoming CA during AddNew and SignWithNew, else nil.
func (s *State) Next() *CA { return s.next }

// Signer returns the CA that signs leaves in this phase.
func (s *State) Signer() *CA {
	if s.phase == PhaseSignWithNew {
		return s.next
	}
	return s.current
}

// CAs returns the CAs whose roots are trusted, established first.
func (s *State) CAs() []*CA {
	if s.next != nil {
		return []*CA{s.current, s.next}
	}
	return []*CA{s.current}
}

// Bundle returns the roots trusted in this phase.
func (s *State) Bundle() *Bundle {
	if s.next != nil {
		return NewBundle(s.current.td, s.current.Root(), s.next.Root())
	}
	return s.current.Bundle()
}

// Waiting describes, for `trellis ca rotate`, what the phase waits for
// before Advance can proceed; "" in Stable.
func (s *State) Waiting() string {
	switch s.phase {
	case PhaseAddNew:
		return fmt.Sprintf("every proxy to acknowledge bundle %s (old and new roots)", s.Bundle().Version())
	case PhaseSignWithNew:
		return "every leaf signed by the old CA to be renewed or to expire"
	case PhaseRemoveOld:
		return fmt.Sprintf("every proxy to acknowledge bundle %s (new root only)", s.Bundle().Version())
	}
	return ""
}

// Begin starts a rotation to next: Stable(A) → AddNew. next must be in the
// same trust domain, currently valid, and have a different root.
func (s *State) Begin(next *CA) (*State, error) {
	if s.phase != PhaseStable {
		return nil, fmt.Errorf("rotation: cannot begin in phase %s: a rotation is in progress (waiting for %s)", s.phase, s.Waiting())
	}
	if err := s.checkNext(next); err != nil {
		return nil, err
	}
	return &State{phase: PhaseAddNew, current: s.current, next: next}, nil
}

// Force starts or hurries a rotation to next: Stable or AddNew →
// SignWithNew. It skips the wait for the two-root bundle to reach every
// proxy: a proxy without it rejects peers holding new leaves until it gets
// it. Use it when the current root has expired or is compromised, where
// waiting gains nothing. The usual preconditions on next apply.
func (s *State) Force(next *CA) (*State, error) {
	if s.phase != PhaseStable && s.phase != PhaseAddNew {
		return nil, fmt.Errorf("rotation: cannot force in phase %s: the new CA already signs; advance instead (waiting for %s)", s.phase, s.Waiting())
	}
	if err := s.checkNext(next); err != nil {
		return nil, err
	}
	return &State{phase: PhaseSignWithNew, current: s.current, next: next}, nil
}

func (s *State) checkNext(next *CA) error {
	switch {
	case next == nil:
		return errors.New("rotation: no new CA")
	case next.td != s.current.td:
		return fmt.Errorf("rotation: new CA is for trust domain %q, the mesh's is %q", next.td, s.current.td)
	case bytes.Equal(next.Root().Raw, s.current.Root().Raw):
		return errors.New("rotation: new CA has the same root as the current one")
	}
	return checkValid("new CA", next)
}

func checkValid(what string, c *CA) error {
	if now := time.Now(); !now.Before(c.notAfter) {
		return fmt.Errorf("rotation: %s expired at %s", what, c.notAfter.UTC().Format(time.RFC3339))
	} else if now.Before(c.notBefore) {
		return fmt.Errorf("rotation: %s not valid before %s", what, c.notBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

// Advance moves to the next phase if p shows the current one's wait is
// over: AddNew → SignWithNew when no proxy is behind, SignWithNew →
// RemoveOld when no leaf from the old CA remains, RemoveOld → Stable when
// no proxy is behind. The error names what is still pending.
func (s *State) Advance(p Progress) (*State, error) {
	switch s.phase {
	case PhaseAddNew:
		if p.ProxiesBehind > 0 {
			return nil, fmt.Errorf("rotation: AddNew → SignWithNew: %d proxies have not acknowledged bundle %s, which trusts the new root; leaves signed by it would be rejected by them", p.ProxiesBehind, s.Bundle().Version())
		}
		if err := checkValid("new CA", s.next); err != nil {
			return nil, err
		}
		return &State{phase: PhaseSignWithNew, current: s.current, next: s.next}, nil
	case PhaseSignWithNew:
		if p.LeavesFromOld > 0 {
			return nil, fmt.Errorf("rotation: SignWithNew → RemoveOld: %d leaves signed by the old CA remain; dropping its root would break them (they renew within a leaf lifetime)", p.LeavesFromOld)
		}
		return &State{phase: PhaseRemoveOld, current: s.next}, nil
	case PhaseRemoveOld:
		if p.ProxiesBehind > 0 {
			return nil, fmt.Errorf("rotation: RemoveOld → Stable: %d proxies have not acknowledged bundle %s without the old root", p.ProxiesBehind, s.Bundle().Version())
		}
		return &State{phase: PhaseStable, current: s.current}, nil
	}
	return nil, fmt.Errorf("rotation: nothing to advance in phase %s: no rotation in progress", s.phase)
}

// Abort cancels a rotation in AddNew, back to Stable with the old CA.
// Later phases cannot be aborted: leaves signed by the new CA exist, and
// only the new root verifies them; rotate again instead.
func (s *State) Abort() (*State, error) {
	if s.phase != PhaseAddNew {
		return nil, fmt.Errorf("rotation: cannot abort in phase %s: only AddNew, before the new CA signs anything, can be aborted", s.phase)
	}
	return &State{phase: PhaseStable, current: s.current}, nil
}

type stateDocument struct {
	Phase   Phase     `json:"phase"`
	Current document  `json:"current"`
	Next    *document `json:"next,omitempty"`
}

// MarshalJSON encodes s for the store: {"phase", "current": CA, "next":
// CA or absent}, each CA as Marshal writes it. Keys are in clear.
func (s *State) MarshalJSON() ([]byte, error) {
	cur, err := s.current.document()
	if err != nil {
		return nil, err
	}
	d := stateDocument{Phase: s.phase, Current: cur}
	if s.next != nil {
		n, err := s.next.document()
		if err != nil {
			return nil, err
		}
		d.Next = &n
	}
	return json.Marshal(d)
}

// UnmarshalState decodes what MarshalJSON wrote, checking that the phase
// and the CAs agree. Like Unmarshal, it loads expired CAs.
func UnmarshalState(data []byte, opts Options) (*State, error) {
	var d stateDocument
	if err := strictJSON(data, &d); err != nil {
		return nil, fmt.Errorf("ca state: %w", err)
	}
	cur, err := d.Current.ca(opts)
	if err != nil {
		return nil, fmt.Errorf("ca state: current: %w", err)
	}
	s := &State{phase: d.Phase, current: cur}
	switch d.Phase {
	case PhaseStable, PhaseRemoveOld:
		if d.Next != nil {
			return nil, fmt.Errorf("ca state: next: must be absent in phase %s", d.Phase)
		}
	case PhaseAddNew, PhaseSignWithNew:
		if d.Next == nil {
			return nil, fmt.Errorf("ca state: next: required in phase %s", d.Phase)
		}
		if s.next, err = d.Next.ca(opts); err != nil {
			return nil, fmt.Errorf("ca state: next: %w", err)
		}
		if s.next.td != cur.td {
			return nil, fmt.Errorf("ca state: next: trust domain %q differs from current %q", s.next.td, cur.td)
		}
	default:
		return nil, fmt.Errorf("ca state: phase %q: want Stable, AddNew, SignWithNew or RemoveOld", d.Phase)
	}
	return s, nil
}
