package outlier

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestHealthCheckPassed checks outlier_detection.successful_active_health_check_uneject_host:
// a passing active health check returns an ejected host at once and clears
// its consecutive counters, unless the option is off or the host is failing
// active health checks.
func TestHealthCheckPassed(t *testing.T) {
	tests := []struct {
		name       string
		uneject    bool
		failedHC   bool
		wantReturn bool
	}{
		{name: "default returns the host", uneject: true, wantReturn: true},
		{name: "option off keeps it out", uneject: false},
		{name: "host failing active checks stays out", uneject: true, failedHC: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.SuccessfulActiveHealthCheckUnejectHost = tc.uneject
			inBubble(t, cfg, 4, func(t *testing.T, e *env) {
				e.report(0, HTTPStatus, 500, 5)
				if !e.hosts[0].Ejected() {
					t.Fatal("not ejected after 5 consecutive 5xx")
				}
				e.hosts[0].SetFailedActiveHealthCheck(tc.failedHC)
				before := e.changes.Load()
				e.d.HealthCheckPassed(e.hosts[0])
				if got := !e.hosts[0].Ejected(); got != tc.wantReturn {
					t.Fatalf("returned = %v, want %v", got, tc.wantReturn)
				}
				if !tc.wantReturn {
					if e.changes.Load() != before {
						t.Error("OnChange called without a change")
					}
					return
				}
				if e.changes.Load() != before+1 {
					t.Errorf("OnChange calls = %d, want %d", e.changes.Load(), before+1)
				}
				if _, _, _, active := e.m.snapshot(); active != 0 {
					t.Errorf("active = %d, want 0", active)
				}
				// The counters start afresh: four more 5xx do not eject...
				e.report(0, HTTPStatus, 500, 4)
				if e.hosts[0].Ejected() {
					t.Fatal("ejected by 4 errors after the return: counters were not cleared")
				}
				// ...the fifth does, for twice the base time (the multiplier is kept).
				e.report(0, HTTPStatus, 500, 1)
				start := time.Now()
				for e.hosts[0].Ejected() {
					time.Sleep(time.Second)
					synctest.Wait()
				}
				if got := time.Since(start); got != 20*time.Second {
					t.Errorf("second ejection lasted %v, want 20s", got)
				}
			})
		})
	}
}

// TestHealthCheckPassedIgnoresOthers checks that hosts not ejected or not
// known are left alone.
func TestHealthCheckPassedIgnoresOthers(t *testing.T) {
	inBubble(t, testConfig(), 2, func(t *testing.T, e *env) {
		e.d.HealthCheckPassed(e.hosts[1])
		stranger := e.hosts[0]
		e.d.SetHosts(e.hosts[1:])
		stranger.SetEjected(true)
		e.d.HealthCheckPassed(stranger)
		if !stranger.Ejected() {
			t.Error("a host the detector does not know was returned")
		}
		if n := e.changes.Load(); n != 0 {
			t.Errorf("OnChange calls = %d, want 0", n)
		}
	})
}
