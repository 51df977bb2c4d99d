package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestMerge merges result files as bench/run.sh leaves them in
// bench/results/: every scenario must come whole from the newest full run
// that measured it, quick runs are left out, and the markdown matches
// testdata/merged.md.
func TestMerge(t *testing.T) {
	http, err := load("testdata/work") // lat-h1, sat-h1, sat-h2
	if err != nil {
		t.Fatal(err)
	}
	grpc, err := load("testdata/work-grpc") // lat-grpc, every system
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// The oldest full run: lat-h1, sat-h1 and sat-h2.
	writeResult(t, dir, "20261120T100000Z", asRun(t, http, "2026-11-20T09:00:00Z",
		"bash bench/run.sh --only haproxy-hop,trellis", "0", nil))
	// A newer full run of lat-h1 alone, 100 µs slower everywhere: it
	// replaces the oldest run's lat-h1, not its sat-*.
	slower := asRun(t, http, "2026-11-21T09:00:00Z", "bash bench/run.sh --only haproxy-hop,trellis --scenarios lat-h1", "0",
		[]string{"lat-h1"})
	for _, r := range slower.Runs {
		if r.Result != nil {
			for k := range r.Result.LatencyUS {
				r.Result.LatencyUS[k] += 100
			}
		}
	}
	writeResult(t, dir, "20261121T100000Z", slower)
	// The newest full run: lat-grpc.
	writeResult(t, dir, "20261126T100000Z", asRun(t, grpc, "2026-11-26T09:00:00Z",
		"bash bench/run.sh --scenarios lat-grpc", "0", nil))
	// Quick runs, newer than all: left out, by name and by metadata.
	quick := writeResult(t, dir, "20261127T100000Z-quick", asRun(t, http, "2026-11-27T09:00:00Z",
		"bash bench/run.sh --quick", "1", nil))
	writeResult(t, dir, "20261128T100000Z", asRun(t, grpc, "2026-11-28T09:00:00Z", "bash bench/run.sh --quick", "1", nil))

	srcs, err := readResultDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := merge(srcs)
	want := map[string]string{"lat-h1": "20261121T100000Z", "lat-grpc": "20261126T100000Z",
		"sat-h1": "20261120T100000Z", "sat-h2": "20261120T100000Z"}
	for sc, name := range want {
		if s := m.From[sc]; s == nil || s.Name != name {
			t.Errorf("%s from %v, want %s", sc, s, name)
		}
	}
	if wantOrder := []string{"lat-h1", "lat-grpc", "sat-h1", "sat-h2"}; !slices.Equal(m.Scenarios, wantOrder) {
		t.Errorf("scenarios %v, want %v", m.Scenarios, wantOrder)
	}
	if got, orig := find(m.Summary, "lat-h1", "direct").LatencyUS["p50"], find(http.Summary, "lat-h1", "direct").LatencyUS["p50"]; got != orig+100 {
		t.Errorf("lat-h1 direct p50 = %v, want the newer run's %v", got, orig+100)
	}
	if g := findGoal(m.Goals, "added p99, lat-grpc: trellis-pair vs haproxy-pair"); g == nil || g.Ratio == nil {
		t.Errorf("no lat-grpc pair goal against HAProxy in %v", m.Goals)
	}
	var md bytes.Buffer
	writeMerged(&md, m)
	golden(t, "testdata/merged.md", md.Bytes())

	// Files named on the command line are taken as they are, quick or not.
	srcs, err = readSources([]string{filepath.Join(dir, "20261120T100000Z.json"), quick})
	if err != nil {
		t.Fatal(err)
	}
	m = merge(srcs)
	if s := m.From["lat-h1"]; s == nil || s.Name != "20261127T100000Z-quick" {
		t.Errorf("lat-h1 from %v, want the named quick run", s)
	}
	if !slices.ContainsFunc(m.Warnings, func(w string) bool { return strings.HasPrefix(w, "run 20261127T100000Z-quick: quick run") }) {
		t.Errorf("no quick-run warning in %q", m.Warnings)
	}
}

func TestMergeErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := readResultDir(dir); err == nil || !strings.Contains(err.Error(), "no result file of a full run") {
		t.Errorf("empty directory: err = %v", err)
	}
	bad := filepath.Join(dir, "x.json")
	if err := os.WriteFile(bad, []byte(`{"meta": {}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readSources([]string{bad}); err == nil || !strings.Contains(err.Error(), "not a bench/report result file") {
		t.Errorf("file without scenarios: err = %v", err)
	}
}

// asRun copies rep as the result of another run: start date, command,
// quick flag and, if scenarios is not nil, only those scenarios.
func asRun(t *testing.T, rep *Report, date, command, quick string, scenarios []string) *Report {
	t.Helper()
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	r.Meta["date"], r.Meta["command"], r.Meta["quick"] = date, command, quick
	if scenarios != nil {
		r.Meta["scenarios"] = strings.Join(scenarios, " ")
		r.Runs = slices.DeleteFunc(r.Runs, func(x Run) bool { return !slices.Contains(scenarios, x.Scenario) })
	}
	return &r
}

// writeResult writes rep as dir/NAME.json, as "report render" does, and
// returns the path.
func writeResult(t *testing.T, dir, name string, rep *Report) string {
	t.Helper()
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".json")
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func findGoal(gs []Goal, check string) *Goal {
	for i := range gs {
		if gs[i].Check == check {
			return &gs[i]
		}
	}
	return nil
}
