package outlier

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestReportRouting checks where each outcome is counted, with and without
// split_external_local_origin_errors.
func TestReportRouting(t *testing.T) {
	type counts struct {
		C5xx, CGateway, CLocal   uint32
		ExtTotal, ExtSuccess     uint64
		LocalTotal, LocalSuccess uint64
	}
	tests := []struct {
		name   string
		split  bool
		o      Outcome
		status int
		want   counts
	}{
		{name: "success", o: Success, want: counts{ExtTotal: 1, ExtSuccess: 1}},
		{name: "failure", o: Failure, want: counts{C5xx: 1, ExtTotal: 1}},
		{name: "http 200", o: HTTPStatus, status: 200, want: counts{ExtTotal: 1, ExtSuccess: 1}},
		{name: "http 404", o: HTTPStatus, status: 404, want: counts{ExtTotal: 1, ExtSuccess: 1}},
		{name: "http 500", o: HTTPStatus, status: 500, want: counts{C5xx: 1, ExtTotal: 1}},
		{name: "http 502", o: HTTPStatus, status: 502, want: counts{C5xx: 1, CGateway: 1, ExtTotal: 1}},
		{name: "http 503", o: HTTPStatus, status: 503, want: counts{C5xx: 1, CGateway: 1, ExtTotal: 1}},
		{name: "http 504", o: HTTPStatus, status: 504, want: counts{C5xx: 1, CGateway: 1, ExtTotal: 1}},
		{name: "http 505", o: HTTPStatus, status: 505, want: counts{C5xx: 1, ExtTotal: 1}},
		{name: "connect success ignored", o: ConnectSuccess},
		{name: "connect failure", o: ConnectFailure, want: counts{C5xx: 1, CGateway: 1, ExtTotal: 1}},
		{name: "reset", o: Reset, want: counts{C5xx: 1, CGateway: 1, ExtTotal: 1}},
		{name: "timeout", o: Timeout, want: counts{C5xx: 1, CGateway: 1, ExtTotal: 1}},
		{name: "split success", split: true, o: Success, want: counts{ExtTotal: 1, ExtSuccess: 1, LocalTotal: 1, LocalSuccess: 1}},
		{name: "split failure", split: true, o: Failure, want: counts{C5xx: 1, CGateway: 1, ExtTotal: 1}},
		{name: "split http 500", split: true, o: HTTPStatus, status: 500, want: counts{C5xx: 1, ExtTotal: 1}},
		{name: "split http 200", split: true, o: HTTPStatus, status: 200, want: counts{ExtTotal: 1, ExtSuccess: 1}},
		{name: "split connect success", split: true, o: ConnectSuccess, want: counts{LocalTotal: 1, LocalSuccess: 1}},
		{name: "split connect failure", split: true, o: ConnectFailure, want: counts{CLocal: 1, LocalTotal: 1}},
		{name: "split reset", split: true, o: Reset, want: counts{CLocal: 1, LocalTotal: 1}},
		{name: "split timeout", split: true, o: Timeout, want: counts{CLocal: 1, LocalTotal: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.SplitExternalLocalOriginErrors = tc.split
			e := newEnv(cfg, 1)
			e.d.Report(e.hosts[0], tc.o, tc.status)
			hs := e.d.table.Load().byHost[e.hosts[0]]
			var got counts
			got.C5xx, got.CGateway, got.CLocal = hs.c5xx.Load(), hs.cGateway.Load(), hs.cLocal.Load()
			got.ExtTotal, got.ExtSuccess = hs.ext.take()
			got.LocalTotal, got.LocalSuccess = hs.local.take()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("counts (-want +got):\n%s", diff)
			}
		})
	}
}

type step struct {
	o      Outcome
	status int
	n      int
}

// TestConsecutive checks that each consecutive detector ejects at its
// threshold and not before.
func TestConsecutive(t *testing.T) {
	tests := []struct {
		name     string
		cfg      func(c *Config)
		before   []step // must not eject
		trigger  step   // one report that ejects (n ignored)
		noEject  bool   // trigger must not eject either
		wantType EjectionType
	}{
		{
			name:     "5xx",
			before:   []step{{HTTPStatus, 500, 4}},
			trigger:  step{o: HTTPStatus, status: 500},
			wantType: Consecutive5xx,
		},
		{
			name:    "5xx reset by success",
			before:  []step{{HTTPStatus, 500, 4}, {HTTPStatus, 200, 1}, {HTTPStatus, 500, 3}},
			trigger: step{o: HTTPStatus, status: 500}, noEject: true,
		},
		{
			name:     "5xx threshold 2",
			cfg:      func(c *Config) { c.Consecutive5xx = 2 },
			before:   []step{{HTTPStatus, 503, 1}},
			trigger:  step{o: HTTPStatus, status: 500},
			wantType: Consecutive5xx,
		},
		{
			name:    "5xx disabled",
			cfg:     func(c *Config) { c.Consecutive5xx = 0 },
			before:  []step{{HTTPStatus, 500, 100}},
			trigger: step{o: HTTPStatus, status: 500}, noEject: true,
		},
		{
			name:     "gateway failure",
			cfg:      func(c *Config) { c.Consecutive5xx = 0; c.EnforcingConsecutiveGatewayFailure = 100 },
			before:   []step{{HTTPStatus, 502, 2}, {HTTPStatus, 504, 2}},
			trigger:  step{o: HTTPStatus, status: 503},
			wantType: ConsecutiveGatewayFailure,
		},
		{
			name:    "gateway failure reset by other 5xx",
			cfg:     func(c *Config) { c.Consecutive5xx = 0; c.EnforcingConsecutiveGatewayFailure = 100 },
			before:  []step{{HTTPStatus, 503, 4}, {HTTPStatus, 500, 1}, {HTTPStatus, 503, 3}},
			trigger: step{o: HTTPStatus, status: 503}, noEject: true,
		},
		{
			name:    "gateway failure not enforced by default",
			cfg:     func(c *Config) { c.Consecutive5xx = 0 },
			before:  []step{{HTTPStatus, 503, 4}},
			trigger: step{o: HTTPStatus, status: 503}, noEject: true,
		},
		{
			name:     "gateway failure before 5xx at equal thresholds",
			cfg:      func(c *Config) { c.EnforcingConsecutiveGatewayFailure = 100 },
			before:   []step{{HTTPStatus, 503, 4}},
			trigger:  step{o: HTTPStatus, status: 503},
			wantType: ConsecutiveGatewayFailure,
		},
		{
			name:     "local origin counts as 5xx when not split",
			before:   []step{{ConnectFailure, 0, 2}, {ConnectSuccess, 0, 1}, {Reset, 0, 2}},
			trigger:  step{o: Timeout},
			wantType: Consecutive5xx,
		},
		{
			name:     "local origin failure when split",
			cfg:      func(c *Config) { c.SplitExternalLocalOriginErrors = true },
			before:   []step{{ConnectFailure, 0, 2}, {HTTPStatus, 200, 1}, {Timeout, 0, 2}},
			trigger:  step{o: Reset},
			wantType: ConsecutiveLocalOriginFailure,
		},
		{
			name:    "local origin failure reset by connect success",
			cfg:     func(c *Config) { c.SplitExternalLocalOriginErrors = true },
			before:  []step{{ConnectFailure, 0, 4}, {ConnectSuccess, 0, 1}, {ConnectFailure, 0, 3}},
			trigger: step{o: ConnectFailure}, noEject: true,
		},
		{
			name:    "local origin failures do not count as 5xx when split",
			cfg:     func(c *Config) { c.SplitExternalLocalOriginErrors = true; c.ConsecutiveLocalOriginFailure = 0 },
			before:  []step{{ConnectFailure, 0, 10}, {Timeout, 0, 10}},
			trigger: step{o: Reset}, noEject: true,
		},
		{
			name:     "5xx still counted when split",
			cfg:      func(c *Config) { c.SplitExternalLocalOriginErrors = true },
			before:   []step{{HTTPStatus, 500, 2}, {ConnectFailure, 0, 3}, {HTTPStatus, 500, 2}},
			trigger:  step{o: HTTPStatus, status: 500},
			wantType: Consecutive5xx,
		},
		{
			name:    "enforcing_consecutive_5xx 0",
			cfg:     func(c *Config) { c.EnforcingConsecutive5xx = 0 },
			before:  []step{{HTTPStatus, 500, 99}},
			trigger: step{o: HTTPStatus, status: 500}, noEject: true,
		},
		{
			name:    "enforcing_consecutive_local_origin_failure 0",
			cfg:     func(c *Config) { c.SplitExternalLocalOriginErrors = true; c.EnforcingConsecutiveLocalOriginFailure = 0 },
			before:  []step{{ConnectFailure, 0, 99}},
			trigger: step{o: ConnectFailure}, noEject: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			e := newEnv(cfg, 4)
			for _, s := range tc.before {
				e.report(0, s.o, s.status, s.n)
				if got := e.ejected(); got != nil {
					t.Fatalf("ejected %v before the threshold", got)
				}
			}
			e.report(0, tc.trigger.o, tc.trigger.status, 1)
			_, ejected, _, active := e.m.snapshot()
			if tc.noEject {
				if got := e.ejected(); got != nil || len(ejected) != 0 {
					t.Fatalf("ejected %v (%v), want none", got, ejected)
				}
				return
			}
			if diff := cmp.Diff([]int{0}, e.ejected()); diff != "" {
				t.Errorf("ejected hosts (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(map[EjectionType]int{tc.wantType: 1}, ejected); diff != "" {
				t.Errorf("ejections (-want +got):\n%s", diff)
			}
			if active != 1 || e.changes.Load() != 1 {
				t.Errorf("active = %d, OnChange calls = %d; want 1, 1", active, e.changes.Load())
			}
		})
	}
}

// TestEnforcingZeroDetects checks that enforcing 0 still counts detections.
func TestEnforcingZeroDetects(t *testing.T) {
	cfg := testConfig()
	cfg.EnforcingConsecutive5xx = 0
	e := newEnv(cfg, 2)
	e.report(0, HTTPStatus, 500, 50) // 10 runs of 5
	detected, ejected, _, _ := e.m.snapshot()
	if detected[Consecutive5xx] != 10 || len(ejected) != 0 || e.ejected() != nil {
		t.Errorf("detected %v, ejected %v, hosts %v; want 10 detections and no ejection", detected, ejected, e.ejected())
	}
}

// TestMaxEjectionPercent checks the cap, which counts the host about to be
// ejected (Envoy: 100 × (active+1) / hosts <= max_ejection_percent).
func TestMaxEjectionPercent(t *testing.T) {
	tests := []struct {
		name         string
		hosts        int
		percent      uint32
		failing      int
		wantEjected  int
		wantOverflow int
	}{
		{name: "default 10% of 10", hosts: 10, percent: 10, failing: 3, wantEjected: 1, wantOverflow: 2},
		{name: "10% of 5 ejects none", hosts: 5, percent: 10, failing: 1, wantEjected: 0, wantOverflow: 1},
		{name: "50% of 3", hosts: 3, percent: 50, failing: 3, wantEjected: 1, wantOverflow: 2},
		{name: "50% of 4", hosts: 4, percent: 50, failing: 4, wantEjected: 2, wantOverflow: 2},
		{name: "34% of 3", hosts: 3, percent: 34, failing: 2, wantEjected: 1, wantOverflow: 1},
		{name: "100%", hosts: 3, percent: 100, failing: 3, wantEjected: 3},
		{name: "0%", hosts: 3, percent: 0, failing: 3, wantOverflow: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.MaxEjectionPercent = tc.percent
			e := newEnv(cfg, tc.hosts)
			for i := range tc.failing {
				e.report(i, HTTPStatus, 500, 5)
			}
			_, _, overflow, active := e.m.snapshot()
			if got := len(e.ejected()); got != tc.wantEjected || active != tc.wantEjected {
				t.Errorf("ejected %d hosts (active gauge %d), want %d", got, active, tc.wantEjected)
			}
			if overflow != tc.wantOverflow {
				t.Errorf("overflow = %d, want %d", overflow, tc.wantOverflow)
			}
		})
	}
}

// TestUnknownHost checks that reports for hosts not in the set are ignored.
func TestUnknownHost(t *testing.T) {
	e := newEnv(testConfig(), 1)
	other := newEnv(testConfig(), 1).hosts[0]
	for range 10 {
		e.d.Report(other, HTTPStatus, 500)
	}
	if other.Ejected() {
		t.Error("host outside the set was ejected")
	}
}

// TestLog checks the ejection record's fields.
func TestLog(t *testing.T) {
	var buf bytes.Buffer
	cfg := testConfig()
	d := New(cfg, Options{Cluster: "web", Logger: slogText(&buf)})
	h := newEnv(cfg, 1).hosts[0]
	d.SetHosts(hostsOf(h))
	for range 5 {
		d.Report(h, HTTPStatus, 500)
	}
	got := buf.String()
	for _, want := range []string{"outlier host ejected", "cluster=web", "host=10.0.0.1:80", "type=consecutive_5xx", "duration=10s"} {
		if !strings.Contains(got, want) {
			t.Errorf("log %q lacks %q", got, want)
		}
	}
}

// TestReportAllocs checks that Report does not allocate.
func TestReportAllocs(t *testing.T) {
	e := newEnv(testConfig(), 3)
	outcomes := []struct {
		o Outcome
		s int
	}{{HTTPStatus, 200}, {HTTPStatus, 503}, {ConnectSuccess, 0}, {Timeout, 0}, {HTTPStatus, 200}}
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		oc := outcomes[i%len(outcomes)]
		e.d.Report(e.hosts[i%3], oc.o, oc.s)
		i++
	})
	if allocs != 0 {
		t.Errorf("Report allocates %v times per call", allocs)
	}
}
