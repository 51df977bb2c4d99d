package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Report is the combined JSON written beside RESULTS.md.
type Report struct {
	Meta     map[string]string `json:"meta"`
	Summary  []Summary         `json:"summary"`
	Goals    []Goal            `json:"goals"`
	Warnings []string          `json:"warnings"`
	Runs     []Run             `json:"runs"`
}

func renderCmd(args []string) error {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	work := fs.String("work", "", "work directory of a bench/run.sh run")
	jsonOut := fs.String("json", "", "combined JSON output file")
	mdOut := fs.String("md", "", "markdown output file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *work == "" || *jsonOut == "" || *mdOut == "" {
		return fmt.Errorf("render: -work, -json and -md are required")
	}
	rep, err := load(*work)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
		return err
	}
	f, err := os.Create(*mdOut)
	if err != nil {
		return err
	}
	writeMarkdown(f, rep)
	return f.Close()
}

// load reads a work directory into a Report.
func load(work string) (*Report, error) {
	meta, err := readMeta(filepath.Join(work, "meta.env"))
	if err != nil {
		return nil, err
	}
	clk, err := strconv.ParseFloat(meta["clk_tck"], 64)
	if err != nil || clk <= 0 {
		clk = 100
	}
	runs, err := readRuns(work, clk)
	if err != nil {
		return nil, err
	}
	sums := summarize(runs, strings.Fields(meta["scenarios"]), strings.Fields(meta["systems"]))
	return &Report{Meta: meta, Summary: sums, Goals: goals(sums), Warnings: warnings(meta, sums, runs), Runs: runs}, nil
}

var scenarioTitles = map[string]string{
	"lat-h1": "Latency, HTTP/1.1: fortio at 1000 qps, 16 connections, 1 KiB response",
	"lat-h2": "Latency, HTTP/2 (h2c from the client): fortio -h2 at 1000 qps, 16 connections, 1 KiB response",
	"lat-grpc": "Latency, gRPC (h2c from the client and to the backend): fortio -grpc -ping at 1000 qps, 16 connections, " +
		"1 KiB payload echoed by fortio's gRPC ping server",
	"sat-h1": "Saturation, HTTP/1.1: wrk -t1 -c64, proxies alone on core 0",
	"sat-h2": "Saturation, HTTP/2 (h2c from the client): h2load -t1 -c16 -m4, proxies alone on core 0",
}

func writeMarkdown(w io.Writer, r *Report) {
	m := r.Meta
	fmt.Fprintf(w, "# Trellis benchmark results\n\n")
	if m["quick"] == "1" {
		fmt.Fprintf(w, "> **Quick run** (`--quick`): one short repetition for developing the harness. Not representative.\n\n")
	}
	writeRunFacts(w, m)
	fmt.Fprintln(w)
	if strings.Contains(m["systems"], "trellis-") {
		writeGoals(w, r.Goals)
	} else {
		fmt.Fprintf(w, "Trellis was not part of this run (--only), so the goal ratios are not computed.\n\n")
	}
	for _, sc := range strings.Fields(m["scenarios"]) {
		fmt.Fprintf(w, "## %s\n\n", scenarioTitle(sc))
		writeScenario(w, r.Summary, sc)
	}
	writeList(w, "Warnings", r.Warnings)
	writeList(w, "Failures", failures(r.Runs, m["trellis_build_error"]))
}

// writeRunFacts writes one run's command, date, machine, versions and
// method as a list.
func writeRunFacts(w io.Writer, m map[string]string) {
	fmt.Fprintf(w, "- Command: `%s`\n", m["command"])
	fmt.Fprintf(w, "- Date: %s\n", m["date"])
	fmt.Fprintf(w, "- Machine: %s cores, %s, kernel %s, %s; load average %s at start, %s at end\n",
		m["nproc"], m["cpu_model"], m["kernel"], m["os"], m["loadavg_start"], m["loadavg_end"])
	fmt.Fprintf(w, "- Versions: Go %s, nginx %s, HAProxy %s, Caddy %s, fortio %s, wrk %s, h2load %s, OpenSSL %s, Trellis %s\n",
		m["go"], m["nginx"], m["haproxy"], m["caddy"], m["fortio"], m["wrk"], m["h2load"], m["openssl"], m["trellis"])
	grpcBackend := ""
	if slices.Contains(strings.Fields(m["scenarios"]), "lat-grpc") {
		grpcBackend = " gRPC backend (lat-grpc): fortio's ping server (`fortio server`, grpc-go), one process."
	}
	fmt.Fprintf(w, "- Method: median of %s repetition(s), systems interleaved in each; every run starts the proxies afresh, "+
		"checks one request, warms up %s s, then measures (latency %s s, saturation %s s). Proxies on core 0 "+
		"(one worker / thread / GOMAXPROCS=1 each), load generator and backend on core 1. Backend: nginx `return 200` "+
		"with a 1 KiB body, one worker.%s Pairs: client → A (plain) → mutual TLS 1.3, ECDSA P-256 → B → backend. "+
		"See bench/README.md for the columns.\n", m["reps"], m["warm_secs"], m["lat_secs"], m["sat_secs"], grpcBackend)
}

func scenarioTitle(sc string) string {
	if t, ok := scenarioTitles[sc]; ok {
		return t
	}
	return sc
}

func writeScenario(w io.Writer, sums []Summary, sc string) {
	if strings.HasPrefix(sc, "lat-") {
		writeLatency(w, sums, sc)
	} else {
		writeSaturation(w, sums, sc)
	}
}

func writeGoals(w io.Writer, gs []Goal) {
	fmt.Fprintf(w, "## Trellis against the peers (issue 2 goals)\n\n")
	fmt.Fprintf(w, "| check | Trellis | peer | ratio | goal | met |\n|---|--:|--:|--:|---|---|\n")
	for _, g := range gs {
		met := "n/a"
		if g.Met != nil {
			met = map[bool]string{true: "yes", false: "**no**"}[*g.Met]
		}
		if g.Note != "" {
			met += " (" + g.Note + ")"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", g.Check, num(g.Trellis, g.prec), num(g.Peer, g.prec),
			num(g.Ratio, 2), g.Target, met)
	}
	fmt.Fprintln(w)
}

func writeLatency(w io.Writer, sums []Summary, sc string) {
	fmt.Fprintf(w, "| system | p50 µs | p90 µs | p99 µs | p99.9 µs | +p50 | +p90 | +p99 | +p99.9 | qps | errors | CPU µs/req | RSS idle MB | RSS peak MB | foreign %% | runs |\n")
	fmt.Fprintf(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, s := range sums {
		if s.Scenario != sc {
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", s.System,
			key(s.LatencyUS, "p50"), key(s.LatencyUS, "p90"), key(s.LatencyUS, "p99"), key(s.LatencyUS, "p99.9"),
			key(s.AddedUS, "p50"), key(s.AddedUS, "p90"), key(s.AddedUS, "p99"), key(s.AddedUS, "p99.9"),
			num(s.RPS, 0), num(s.Errors, 0), num(s.CPUMicrosPerReq, 1), num(s.RSSIdleMB, 1), num(s.RSSPeakMB, 1),
			num(s.ForeignCorePct, 0), runsCell(s))
	}
	fmt.Fprintln(w)
}

func writeSaturation(w io.Writer, sums []Summary, sc string) {
	fmt.Fprintf(w, "| system | req/s | × direct | p50 µs | p99 µs | mean µs | errors | CPU µs/req | RSS idle MB | RSS peak MB | foreign %% | runs |\n")
	fmt.Fprintf(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, s := range sums {
		if s.Scenario != sc {
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", s.System,
			num(s.RPS, 0), num(s.VsDirect, 2), key(s.LatencyUS, "p50"), key(s.LatencyUS, "p99"), key(s.LatencyUS, "mean"),
			num(s.Errors, 0), num(s.CPUMicrosPerReq, 1), num(s.RSSIdleMB, 1), num(s.RSSPeakMB, 1),
			num(s.ForeignCorePct, 0), runsCell(s))
	}
	fmt.Fprintln(w)
}

func runsCell(s Summary) string {
	if s.Failed == 0 {
		return strconv.Itoa(s.Runs)
	}
	return fmt.Sprintf("%d (%d failed)", s.Runs, s.Failed)
}

// failures lists each distinct failure once, with how many runs it hit.
func failures(runs []Run, buildErr string) []string {
	var out []string
	if buildErr != "" {
		out = append(out, "trellis-proxy build: "+buildErr)
	}
	type failure struct {
		first Run
		n     int
	}
	var order []string
	seen := map[string]*failure{}
	for _, r := range runs {
		if r.Status == "ok" {
			continue
		}
		k := r.System + "\x00" + r.Error
		if f, ok := seen[k]; ok {
			f.n++
			continue
		}
		seen[k] = &failure{first: r, n: 1}
		order = append(order, k)
	}
	for _, k := range order {
		f := seen[k]
		msg := f.first.Error
		if !strings.HasPrefix(msg, f.first.System) {
			msg = f.first.System + ": " + msg
		}
		out = append(out, fmt.Sprintf("%s (first in %s rep %d; %d run(s) failed or skipped)",
			msg, f.first.Scenario, f.first.Rep, f.n))
	}
	return out
}

func writeList(w io.Writer, title string, items []string) {
	if len(items) == 0 {
		return
	}
	fmt.Fprintf(w, "## %s\n\n", title)
	for _, it := range items {
		fmt.Fprintf(w, "- %s\n", strings.ReplaceAll(it, "|", "\\|"))
	}
	fmt.Fprintln(w)
}

func num(v *float64, prec int) string {
	if v == nil {
		return "—"
	}
	return strconv.FormatFloat(*v, 'f', prec, 64)
}

func key(m map[string]float64, k string) string {
	v, ok := m[k]
	if !ok {
		return "—"
	}
	return num(&v, 0)
}
