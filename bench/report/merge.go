package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// scenarioOrder is the order of the scenarios in RESULTS.md (ALL_SCENARIOS
// in lib/common.sh); a scenario not listed here follows, by name.
var scenarioOrder = []string{"lat-h1", "lat-h2", "lat-grpc", "sat-h1", "sat-h2"}

// Source is one run's result file (results/<stamp>.json) read back.
type Source struct {
	Name   string // the file name without .json: the run's UTC stamp
	Report *Report
}

// Merged is what RESULTS.md shows: each scenario taken whole from the
// newest run that measured it, so that the numbers of one table, and the
// goal ratios computed from them, always come from one run.
type Merged struct {
	Sources   []*Source          // the runs used, newest first
	From      map[string]*Source // scenario → the run it is taken from
	Scenarios []string           // in scenarioOrder
	Summary   []Summary
	Goals     []Goal
	Warnings  []string
	Runs      []Run // the runs of the chosen scenarios
}

func mergeCmd(args []string) error {
	fs := flag.NewFlagSet("merge", flag.ContinueOnError)
	dir := fs.String("dir", "", "merge every full-run result file DIR/*.json (not *-quick.json, not quick=1)")
	mdOut := fs.String("md", "", "markdown output file (bench/RESULTS.md)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	files := fs.Args()
	if *mdOut == "" || (*dir == "") == (len(files) == 0) {
		return errors.New("usage: report merge -md FILE (-dir DIR | RESULT.json...)")
	}
	var srcs []*Source
	var err error
	if *dir != "" {
		srcs, err = readResultDir(*dir)
	} else {
		srcs, err = readSources(files)
	}
	if err != nil {
		return err
	}
	// Sections recorded by the other tools (policy-cost, pushscale) sit
	// after keepMarker in RESULTS.md and survive a merge.
	var kept []byte
	if old, err := os.ReadFile(*mdOut); err == nil {
		if i := bytes.Index(old, []byte(keepMarker)); i >= 0 {
			kept = old[i:]
		}
	}
	f, err := os.Create(*mdOut)
	if err != nil {
		return err
	}
	writeMerged(f, merge(srcs))
	if len(kept) > 0 {
		f.Write([]byte("\n"))
		f.Write(kept)
	}
	return f.Close()
}

// keepMarker starts the part of RESULTS.md that merge keeps as it is.
const keepMarker = "<!-- Recorded by other tools; report merge keeps everything below. -->"

// readResultDir reads the result files of the full runs in dir: quick runs
// (named *-quick.json, or quick=1 in their metadata) are left out.
func readResultDir(dir string) ([]*Source, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	paths = slices.DeleteFunc(paths, func(p string) bool { return strings.HasSuffix(p, "-quick.json") })
	srcs, err := readSources(paths)
	if err != nil {
		return nil, err
	}
	srcs = slices.DeleteFunc(srcs, func(s *Source) bool { return s.Report.Meta["quick"] == "1" })
	if len(srcs) == 0 {
		return nil, fmt.Errorf("merge: no result file of a full run in %s", dir)
	}
	return srcs, nil
}

func readSources(paths []string) ([]*Source, error) {
	var srcs []*Source
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var r Report
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if r.Meta["scenarios"] == "" {
			return nil, fmt.Errorf("%s: not a bench/report result file (no meta.scenarios)", p)
		}
		srcs = append(srcs, &Source{Name: strings.TrimSuffix(filepath.Base(p), ".json"), Report: &r})
	}
	return srcs, nil
}

// merge takes each scenario from the newest run that contains it: the
// latest start date (meta.date), then the greater file name. The summaries
// are computed again from that run's raw runs.
func merge(srcs []*Source) *Merged {
	srcs = slices.Clone(srcs)
	slices.SortStableFunc(srcs, func(a, b *Source) int {
		return cmp.Or(cmp.Compare(b.Report.Meta["date"], a.Report.Meta["date"]), cmp.Compare(b.Name, a.Name))
	})
	m := &Merged{From: map[string]*Source{}}
	for _, s := range srcs {
		for _, sc := range strings.Fields(s.Report.Meta["scenarios"]) {
			if _, ok := m.From[sc]; !ok {
				m.From[sc] = s
				m.Scenarios = append(m.Scenarios, sc)
			}
		}
	}
	slices.SortFunc(m.Scenarios, func(a, b string) int {
		ia, ib := slices.Index(scenarioOrder, a), slices.Index(scenarioOrder, b)
		if ia < 0 {
			ia = len(scenarioOrder)
		}
		if ib < 0 {
			ib = len(scenarioOrder)
		}
		return cmp.Or(cmp.Compare(ia, ib), cmp.Compare(a, b))
	})
	for _, sc := range m.Scenarios {
		s := m.From[sc]
		var runs []Run
		for _, r := range s.Report.Runs {
			if r.Scenario == sc {
				runs = append(runs, r)
			}
		}
		m.Summary = append(m.Summary, summarize(runs, []string{sc}, strings.Fields(s.Report.Meta["systems"]))...)
		m.Runs = append(m.Runs, runs...)
	}
	for _, s := range srcs {
		if len(m.scenariosOf(s)) > 0 {
			m.Sources = append(m.Sources, s)
			for _, w := range runWarnings(s.Report.Meta) {
				m.Warnings = append(m.Warnings, "run "+s.Name+": "+w)
			}
		}
	}
	m.Goals = goals(m.Summary)
	m.Warnings = append(m.Warnings, dataWarnings(m.Summary, m.Runs)...)
	return m
}

// scenariosOf lists the scenarios taken from s.
func (m *Merged) scenariosOf(s *Source) []string {
	var out []string
	for _, sc := range m.Scenarios {
		if m.From[sc] == s {
			out = append(out, sc)
		}
	}
	return out
}

func writeMerged(w io.Writer, m *Merged) {
	fmt.Fprintf(w, "# Trellis benchmark results\n\n")
	fmt.Fprintf(w, "Built by `report merge` from the runs' result files (`bench/results/<run>.json`): each scenario is "+
		"taken whole from the newest run that measured it, so the numbers of one table and each goal ratio come from "+
		"one run. See bench/README.md for the columns.\n\n")
	for _, s := range m.Sources {
		if s.Report.Meta["quick"] == "1" {
			fmt.Fprintf(w, "> **Includes quick runs** (`--quick`): short repetitions for developing the harness. Not representative.\n\n")
			break
		}
	}
	fmt.Fprintf(w, "| scenario | run | started | command |\n|---|---|---|---|\n")
	for _, sc := range m.Scenarios {
		s := m.From[sc]
		fmt.Fprintf(w, "| %s | %s | %s | `%s` |\n", sc, s.Name, s.Report.Meta["date"], s.Report.Meta["command"])
	}
	fmt.Fprintln(w)
	for _, s := range m.Sources {
		fmt.Fprintf(w, "Run %s (%s):\n\n", s.Name, strings.Join(m.scenariosOf(s), ", "))
		writeRunFacts(w, s.Report.Meta)
		fmt.Fprintln(w)
	}
	trellis := false
	for _, s := range m.Summary {
		trellis = trellis || strings.HasPrefix(s.System, "trellis-")
	}
	if trellis {
		writeGoals(w, m.Goals)
	} else {
		fmt.Fprintf(w, "Trellis was not part of these runs (--only), so the goal ratios are not computed.\n\n")
	}
	for _, sc := range m.Scenarios {
		fmt.Fprintf(w, "## %s\n\n", scenarioTitle(sc))
		fmt.Fprintf(w, "From run %s.\n\n", m.From[sc].Name)
		writeScenario(w, m.Summary, sc)
	}
	writeList(w, "Warnings", m.Warnings)
	writeList(w, "Failures", m.failures())
}

// failures lists each used run's failures (as "render" does for one run)
// over the scenarios taken from it.
func (m *Merged) failures() []string {
	var out []string
	for _, s := range m.Sources {
		scs := m.scenariosOf(s)
		runs := slices.DeleteFunc(slices.Clone(m.Runs), func(r Run) bool { return !slices.Contains(scs, r.Scenario) })
		for _, f := range failures(runs, s.Report.Meta["trellis_build_error"]) {
			out = append(out, "run "+s.Name+": "+f)
		}
	}
	return out
}
