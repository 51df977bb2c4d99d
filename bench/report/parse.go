package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Result is what one load-generator run measured.
type Result struct {
	// OK counts responses with a 2xx status; Errors counts every other
	// outcome (other status, socket error, timeout).
	OK     int64 `json:"ok"`
	Errors int64 `json:"errors"`
	// Seconds is the measured duration and RPS is OK/Seconds.
	Seconds float64 `json:"seconds"`
	RPS     float64 `json:"rps"`
	// LatencyUS holds percentiles ("p50", "p90", "p99", "p99.9") and
	// "min", "mean", "max" in microseconds, where the tool reports them.
	LatencyUS map[string]float64 `json:"latency_us,omitempty"`
	// Connections is the number of sockets the client opened (fortio).
	Connections int64 `json:"connections,omitempty"`
	// Tool holds the tool-specific counters kept for the record.
	Tool map[string]any `json:"tool,omitempty"`
}

// Run is one line of runs.tsv with its parsed result.
type Run struct {
	Rep      int     `json:"rep"`
	Scenario string  `json:"scenario"`
	System   string  `json:"system"`
	Status   string  `json:"status"` // ok, failed or skipped
	Tool     string  `json:"tool"`
	Error    string  `json:"error,omitempty"`
	Result   *Result `json:"result,omitempty"`
	// CPUTicks is utime+stime of the proxy processes over the measured
	// load, in clock ticks; CPUMicrosPerReq divides it by Result.OK.
	CPUTicks        *int64   `json:"cpu_ticks,omitempty"`
	CPUMicrosPerReq *float64 `json:"cpu_us_per_request,omitempty"`
	// RSSIdleKB is VmRSS after start, before load; RSSPeakKB is VmHWM
	// after the run. Both are summed over the proxy processes.
	RSSIdleKB *int64 `json:"rss_idle_kb,omitempty"`
	RSSPeakKB *int64 `json:"rss_peak_kb,omitempty"`
	// CoreBusyTicks is the busy time of the whole proxy core (from
	// /proc/stat) over WallMS, the measured load's wall time.
	// ForeignCorePct is the share of the proxy core that went to anything
	// but the proxies (other processes, interrupts) during the run.
	CoreBusyTicks  *int64   `json:"core_busy_ticks,omitempty"`
	WallMS         *int64   `json:"wall_ms,omitempty"`
	ForeignCorePct *float64 `json:"foreign_core_pct,omitempty"`
}

// readMeta reads the key=value lines of meta.env.
func readMeta(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	meta := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok {
			meta[k] = v
		}
	}
	return meta, sc.Err()
}

// readRuns reads runs.tsv (columns named by its header line, see
// RUNS_HEADER in lib/scenarios.sh) and parses every run's output file.
func readRuns(work string, clkTck float64) ([]Run, error) {
	b, err := os.ReadFile(filepath.Join(work, "runs.tsv"))
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	header := strings.Split(lines[0], "\t")
	var runs []Run
	for i, line := range lines[1:] {
		f := strings.Split(line, "\t")
		if len(f) != len(header) {
			return nil, fmt.Errorf("runs.tsv:%d: want %d fields, got %d", i+2, len(header), len(f))
		}
		col := map[string]string{}
		for j, h := range header {
			col[h] = f[j]
		}
		runs = append(runs, parseRun(work, col, clkTck))
	}
	return runs, nil
}

func parseRun(work string, col map[string]string, clkTck float64) Run {
	r := Run{Scenario: col["scenario"], System: col["system"], Status: col["status"], Tool: col["tool"], Error: col["error"]}
	r.Rep, _ = strconv.Atoi(col["rep"])
	r.CPUTicks, r.RSSIdleKB, r.RSSPeakKB = optInt(col["cpu_ticks"]), optInt(col["rss_idle_kb"]), optInt(col["rss_peak_kb"])
	r.CoreBusyTicks, r.WallMS = optInt(col["core_busy_ticks"]), optInt(col["wall_ms"])
	if col["output"] != "" && r.Status == "ok" {
		res, err := parseOutput(r.Tool, filepath.Join(work, col["output"]))
		if err != nil {
			r.Status, r.Error = "failed", err.Error()
		}
		r.Result = res
	}
	if r.Status == "ok" && r.CPUTicks != nil && r.Result != nil && r.Result.OK > 0 {
		v := float64(*r.CPUTicks) * 1e6 / clkTck / float64(r.Result.OK)
		r.CPUMicrosPerReq = &v
	}
	if r.CoreBusyTicks != nil && r.WallMS != nil && *r.WallMS > 0 {
		own := int64(0)
		if r.CPUTicks != nil {
			own = *r.CPUTicks
		}
		v := max(float64(*r.CoreBusyTicks-own), 0) * 100 / (float64(*r.WallMS) / 1000 * clkTck)
		r.ForeignCorePct = &v
	}
	return r
}

func optInt(s string) *int64 {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return nil
	}
	return &v
}

func parseOutput(tool, path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	switch tool {
	case "fortio":
		return parseFortio(b)
	case "wrk":
		return parseWrk(b)
	case "h2load":
		return parseH2load(b)
	}
	return nil, fmt.Errorf("unknown tool %q", tool)
}

// fortioJSON is the part of fortio's -json output the report uses.
type fortioJSON struct {
	ActualQPS         float64
	ActualDuration    int64 // nanoseconds
	RequestedQPS      string
	NumThreads        int
	SocketCount       int64
	RetCodes          map[string]int64
	DurationHistogram struct {
		Count         int64
		Min, Max, Avg float64 // seconds
		Percentiles   []struct{ Percentile, Value float64 }
	}
}

// parseFortio reads fortio's JSON. For HTTP a 2xx status is a success;
// fortio's gRPC runner counts a successful call (Ping or health check) as
// "SERVING" and a failed one as "ERROR" (or another health status).
func parseFortio(b []byte) (*Result, error) {
	var f fortioJSON
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("fortio json: %w", err)
	}
	if f.ActualDuration <= 0 {
		return nil, errors.New("fortio json: no ActualDuration")
	}
	r := &Result{
		Seconds:     float64(f.ActualDuration) / 1e9,
		Connections: f.SocketCount,
		LatencyUS: map[string]float64{
			"min": f.DurationHistogram.Min * 1e6, "mean": f.DurationHistogram.Avg * 1e6,
			"max": f.DurationHistogram.Max * 1e6,
		},
		Tool: map[string]any{"actual_qps": f.ActualQPS, "requested_qps": f.RequestedQPS,
			"threads": f.NumThreads, "ret_codes": f.RetCodes},
	}
	for code, n := range f.RetCodes {
		if strings.HasPrefix(code, "2") || code == "SERVING" {
			r.OK += n
		} else {
			r.Errors += n
		}
	}
	for _, p := range f.DurationHistogram.Percentiles {
		r.LatencyUS["p"+strconv.FormatFloat(p.Percentile, 'f', -1, 64)] = p.Value * 1e6
	}
	r.RPS = float64(r.OK) / r.Seconds
	return r, nil
}

// wrkJSON is the line configs/wrk-report.lua prints after "WRKJSON ".
type wrkJSON struct {
	Requests   int64              `json:"requests"`
	DurationUS int64              `json:"duration_us"`
	Bytes      int64              `json:"bytes"`
	Errors     map[string]int64   `json:"errors"`
	LatencyUS  map[string]float64 `json:"latency_us"`
}

func parseWrk(b []byte) (*Result, error) {
	var line string
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "WRKJSON "); ok {
			line = rest
		}
	}
	if line == "" {
		return nil, errors.New("wrk: no WRKJSON line in output")
	}
	var w wrkJSON
	if err := json.Unmarshal([]byte(line), &w); err != nil {
		return nil, fmt.Errorf("wrk json: %w", err)
	}
	if w.DurationUS <= 0 {
		return nil, errors.New("wrk: zero duration")
	}
	// wrk counts non-2xx/3xx responses in requests and in errors.status.
	status := w.Errors["status"]
	r := &Result{
		OK:        w.Requests - status,
		Errors:    status + w.Errors["connect"] + w.Errors["read"] + w.Errors["write"] + w.Errors["timeout"],
		Seconds:   float64(w.DurationUS) / 1e6,
		LatencyUS: w.LatencyUS,
		Tool:      map[string]any{"requests": w.Requests, "bytes": w.Bytes, "errors": w.Errors},
	}
	r.RPS = float64(r.OK) / r.Seconds
	return r, nil
}

var (
	h2loadFinished = regexp.MustCompile(`(?m)^finished in ([0-9.]+[a-z]+),`)
	h2loadRequests = regexp.MustCompile(`(?m)^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
	h2loadStatus   = regexp.MustCompile(`(?m)^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`)
	h2loadReqTime  = regexp.MustCompile(`(?m)^time for request:\s+(\S+)\s+(\S+)\s+(\S+)`)
)

// parseH2load reads h2load's text summary. Successes are the 2xx status
// codes, not h2load's "succeeded": h2load 1.52 counts an HTTP/1.1 response
// whose reason phrase is empty (HAProxy sends "HTTP/1.1 200 ") as failed.
// h2load reports no percentiles; min, mean and max are kept.
func parseH2load(b []byte) (*Result, error) {
	s := string(b)
	fin, req, st := h2loadFinished.FindStringSubmatch(s), h2loadRequests.FindStringSubmatch(s), h2loadStatus.FindStringSubmatch(s)
	if fin == nil || req == nil || st == nil {
		return nil, errors.New("h2load: summary lines not found in output")
	}
	d, err := time.ParseDuration(fin[1])
	if err != nil || d <= 0 {
		return nil, fmt.Errorf("h2load: bad duration %q", fin[1])
	}
	n := func(x string) int64 { v, _ := strconv.ParseInt(x, 10, 64); return v }
	done, ok := n(req[3]), n(st[1])
	if done > 0 && ok == 0 && n(req[5]) == done {
		return nil, errors.New("h2load counted every response as failed and none as 2xx: h2load 1.52 rejects HTTP/1.1 " +
			"responses with an empty reason phrase (HAProxy sends them); measure HTTP/1.1 with wrk")
	}
	r := &Result{
		OK:      ok,
		Errors:  max(done-ok, 0),
		Seconds: d.Seconds(),
		Tool: map[string]any{"total": n(req[1]), "started": n(req[2]), "done": done,
			"succeeded": n(req[4]), "failed": n(req[5]), "errored": n(req[6]), "timeout": n(req[7]),
			"status_2xx": ok, "status_3xx": n(st[2]), "status_4xx": n(st[3]), "status_5xx": n(st[4])},
	}
	if m := h2loadReqTime.FindStringSubmatch(s); m != nil {
		r.LatencyUS = map[string]float64{}
		for i, k := range []string{"min", "max", "mean"} {
			if d, err := time.ParseDuration(m[i+1]); err == nil {
				r.LatencyUS[k] = float64(d.Nanoseconds()) / 1e3
			}
		}
	}
	r.RPS = float64(r.OK) / r.Seconds
	return r, nil
}
