package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestRenderGolden renders testdata/work (a small quick run: direct,
// haproxy-hop and trellis-hop measured, trellis-pair failed) and compares
// the markdown and the JSON with the golden files.
func TestRenderGolden(t *testing.T) {
	rep, err := load("testdata/work")
	if err != nil {
		t.Fatal(err)
	}
	var md bytes.Buffer
	writeMarkdown(&md, rep)
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "testdata/report.md", md.Bytes())
	golden(t, "testdata/report.json", append(js, '\n'))
}

// TestRenderGoldenGRPC renders testdata/work-grpc (a quick lat-grpc run of
// every system) and compares the markdown with testdata/report-grpc.md.
func TestRenderGoldenGRPC(t *testing.T) {
	rep, err := load("testdata/work-grpc")
	if err != nil {
		t.Fatal(err)
	}
	var md bytes.Buffer
	writeMarkdown(&md, rep)
	golden(t, "testdata/report-grpc.md", md.Bytes())
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./bench/report -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the rendered output (run go test ./bench/report -update and review the diff)", path)
	}
}

func TestParsers(t *testing.T) {
	tests := []struct {
		name, tool, file string
		wantOK           int64
		wantErrors       int64
		wantLatency      string // a latency key that must be present
	}{
		{name: "fortio", tool: "fortio", file: "work/out/1-lat-h1-haproxy-hop.fortio", wantOK: 4992, wantLatency: "p99.9"},
		{name: "wrk", tool: "wrk", file: "work/out/1-sat-h1-direct.wrk", wantOK: 172931, wantLatency: "p99"},
		{name: "h2load", tool: "h2load", file: "work/out/1-sat-h2-direct.h2load", wantOK: 135530, wantLatency: "mean"},
		{name: "fortio grpc", tool: "fortio", file: "work-grpc/out/1-lat-grpc-trellis-pair.fortio", wantOK: 4992, wantLatency: "p99.9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := parseOutput(tc.tool, filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if r.OK != tc.wantOK || r.Errors != tc.wantErrors {
				t.Errorf("ok, errors = %d, %d; want %d, %d", r.OK, r.Errors, tc.wantOK, tc.wantErrors)
			}
			if _, ok := r.LatencyUS[tc.wantLatency]; !ok {
				t.Errorf("latency %q missing in %v", tc.wantLatency, r.LatencyUS)
			}
			if r.RPS <= 0 || r.Seconds <= 0 {
				t.Errorf("rps %v over %v s", r.RPS, r.Seconds)
			}
		})
	}
}

// TestFortioGRPCCodes checks that fortio's gRPC outcomes count: SERVING
// (a successful Ping or health check) as a success, ERROR as a failure.
func TestFortioGRPCCodes(t *testing.T) {
	r, err := parseFortio([]byte(`{"ActualDuration": 2000000000, "RetCodes": {"SERVING": 998, "ERROR": 2}}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.OK != 998 || r.Errors != 2 || r.RPS != 499 {
		t.Errorf("ok, errors, rps = %d, %d, %v; want 998, 2, 499", r.OK, r.Errors, r.RPS)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, tool, input, wantErr string
	}{
		{name: "h2load empty reason phrase", tool: "h2load", input: "@h2load-h1-empty-reason.txt", wantErr: "empty reason phrase"},
		{name: "h2load no summary", tool: "h2load", input: "starting benchmark...\n", wantErr: "summary lines not found"},
		{name: "wrk no json line", tool: "wrk", input: "Running 3s test\n", wantErr: "no WRKJSON line"},
		{name: "fortio not json", tool: "fortio", input: "{", wantErr: "fortio json"},
		{name: "fortio no duration", tool: "fortio", input: "{}", wantErr: "no ActualDuration"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join("testdata", strings.TrimPrefix(tc.input, "@"))
			if !strings.HasPrefix(tc.input, "@") {
				path = filepath.Join(t.TempDir(), "out")
				if err := os.WriteFile(path, []byte(tc.input), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := parseOutput(tc.tool, path)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want float64
	}{
		{name: "odd", in: []float64{3, 1, 2}, want: 2},
		{name: "even", in: []float64{4, 1, 3, 2}, want: 2.5},
		{name: "one", in: []float64{7}, want: 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := median(tc.in); got == nil || *got != tc.want {
				t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
	if median(nil) != nil {
		t.Error("median(nil) != nil")
	}
}

func TestFreePorts(t *testing.T) {
	ports, err := freePorts(5, 20000, ephemeralLow())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p < 20000 || p >= ephemeralLow() || seen[p] {
			t.Errorf("port %d out of range or repeated in %v", p, ports)
		}
		seen[p] = true
	}
}
