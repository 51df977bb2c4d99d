package ads

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

func TestBackoffCeilings(t *testing.T) {
	b := Backoff{Rand: func() float64 { return 0.999999 }}
	var got []time.Duration
	for range 10 {
		got = append(got, b.Next(0).Round(time.Millisecond))
	}
	want := []time.Duration{250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("delays with rand≈1 = %v, want %v ms (doubling from 250ms, capped at 30s)", got, want)
		}
	}
	// A stream that lived past ResetAfter starts the sequence again.
	if d := b.Next(31 * time.Second).Round(time.Millisecond); d != 250*time.Millisecond {
		t.Errorf("after a long-lived stream: %v, want 250ms", d)
	}
	// One that died young does not.
	if d := b.Next(time.Second).Round(time.Millisecond); d != 500*time.Millisecond {
		t.Errorf("after a short-lived stream: %v, want 500ms", d)
	}
}

func TestBackoffFullJitter(t *testing.T) {
	b := Backoff{}
	for i := range 200 {
		d := b.Next(0)
		ceil := min(DefaultBackoffBase<<min(i, 20), DefaultBackoffMax)
		if d < 0 || d >= ceil {
			t.Fatalf("attempt %d: delay %v outside [0, %v)", i, d, ceil)
		}
	}
	if d := (&Backoff{Rand: func() float64 { return 0 }}).Next(0); d != 0 {
		t.Errorf("full jitter allows a zero delay, got %v", d)
	}
}

// TestBackoffSchedule drives the reconnect loop's waits on a fake clock:
// the delays a proxy would wait through while the control plane stays
// down add up as the ceilings say.
func TestBackoffSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := Backoff{Base: time.Second, Max: 8 * time.Second, Rand: func() float64 { return 0.5 }}
		start := time.Now()
		for range 6 {
			if !sleep(t.Context(), b.Next(0)) {
				t.Fatal("sleep ended early")
			}
		}
		// 0.5 × (1 + 2 + 4 + 8 + 8 + 8) seconds.
		if got := time.Since(start); got != 15500*time.Millisecond {
			t.Errorf("six failures waited %v, want 15.5s", got)
		}
		ctx, cancel := context.WithCancel(t.Context())
		go func() {
			time.Sleep(time.Second)
			cancel()
		}()
		before := time.Now()
		if sleep(ctx, time.Hour) {
			t.Error("sleep returned true after its context ended")
		}
		if got := time.Since(before); got != time.Second {
			t.Errorf("a cancelled wait lasted %v, want 1s", got)
		}
	})
}
