package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Summary holds the medians over the successful repetitions of one
// scenario and system.
type Summary struct {
	Scenario string `json:"scenario"`
	System   string `json:"system"`
	// Runs counts successful repetitions; Failed the others.
	Runs   int `json:"runs"`
	Failed int `json:"failed"`
	// RPS is the median of OK responses per second; Errors the median
	// count of non-2xx or failed requests per run.
	RPS    *float64 `json:"rps,omitempty"`
	Errors *float64 `json:"errors,omitempty"`
	// LatencyUS are medians of each percentile; AddedUS subtracts
	// direct's median of the same percentile (latency scenarios).
	LatencyUS map[string]float64 `json:"latency_us,omitempty"`
	AddedUS   map[string]float64 `json:"added_us,omitempty"`
	// VsDirect is RPS divided by direct's RPS.
	VsDirect        *float64 `json:"vs_direct,omitempty"`
	CPUMicrosPerReq *float64 `json:"cpu_us_per_request,omitempty"`
	RSSIdleMB       *float64 `json:"rss_idle_mb,omitempty"`
	RSSPeakMB       *float64 `json:"rss_peak_mb,omitempty"`
	// ForeignCorePct is the median share of the proxy core used by
	// anything but the proxies during the measured runs (noise).
	ForeignCorePct *float64 `json:"foreign_core_pct,omitempty"`
}

var latencyKeys = []string{"p50", "p90", "p99", "p99.9"}

// summarize computes one Summary per scenario and system, in the given
// orders, and the added latency and throughput against direct.
func summarize(runs []Run, scenarios, systems []string) []Summary {
	var out []Summary
	for _, sc := range scenarios {
		var direct *Summary
		for _, sys := range systems {
			s := summarizeOne(runs, sc, sys)
			if sys == "direct" {
				d := s
				direct = &d
			}
			compareToDirect(&s, direct)
			out = append(out, s)
		}
	}
	return out
}

func summarizeOne(runs []Run, scenario, system string) Summary {
	s := Summary{Scenario: scenario, System: system}
	var rps, errs, cpu, idle, peak, foreign []float64
	lat := map[string][]float64{}
	for _, r := range runs {
		if r.Scenario != scenario || r.System != system {
			continue
		}
		if r.Status != "ok" || r.Result == nil {
			s.Failed++
			continue
		}
		s.Runs++
		rps = append(rps, r.Result.RPS)
		errs = append(errs, float64(r.Result.Errors))
		for k, v := range r.Result.LatencyUS {
			lat[k] = append(lat[k], v)
		}
		if r.CPUMicrosPerReq != nil {
			cpu = append(cpu, *r.CPUMicrosPerReq)
		}
		if r.ForeignCorePct != nil {
			foreign = append(foreign, *r.ForeignCorePct)
		}
		if r.RSSIdleKB != nil {
			idle = append(idle, float64(*r.RSSIdleKB)/1024)
		}
		if r.RSSPeakKB != nil {
			peak = append(peak, float64(*r.RSSPeakKB)/1024)
		}
	}
	s.RPS, s.Errors, s.CPUMicrosPerReq = median(rps), median(errs), median(cpu)
	s.RSSIdleMB, s.RSSPeakMB, s.ForeignCorePct = median(idle), median(peak), median(foreign)
	if len(lat) > 0 {
		s.LatencyUS = map[string]float64{}
		for k, v := range lat {
			s.LatencyUS[k] = *median(v)
		}
	}
	return s
}

func compareToDirect(s *Summary, direct *Summary) {
	if direct == nil || s.System == "direct" || s.Runs == 0 || direct.Runs == 0 {
		return
	}
	if s.RPS != nil && direct.RPS != nil && *direct.RPS > 0 {
		v := *s.RPS / *direct.RPS
		s.VsDirect = &v
	}
	for _, k := range latencyKeys {
		v, ok1 := s.LatencyUS[k]
		d, ok2 := direct.LatencyUS[k]
		if ok1 && ok2 {
			if s.AddedUS == nil {
				s.AddedUS = map[string]float64{}
			}
			s.AddedUS[k] = v - d
		}
	}
}

// median returns the median of vs, nil when vs is empty.
func median(vs []float64) *float64 {
	if len(vs) == 0 {
		return nil
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return &m
}

func find(sums []Summary, scenario, system string) *Summary {
	for i := range sums {
		if sums[i].Scenario == scenario && sums[i].System == system {
			return &sums[i]
		}
	}
	return nil
}

// Goal is one of issue 2's targets, evaluated on this run.
type Goal struct {
	Check    string   `json:"check"`
	Scenario string   `json:"scenario"`
	Trellis  *float64 `json:"trellis,omitempty"`
	Peer     *float64 `json:"peer,omitempty"`
	Ratio    *float64 `json:"ratio,omitempty"`
	Target   string   `json:"target"`
	Met      *bool    `json:"met,omitempty"`
	Note     string   `json:"note,omitempty"`

	systems []string // compared systems, Trellis first
	prec    int      // decimals of Trellis and Peer in the markdown
}

type metric func(*Summary) *float64

func addedP99(s *Summary) *float64 {
	if v, ok := s.AddedUS["p99"]; ok {
		return &v
	}
	return nil
}
func rps(s *Summary) *float64     { return s.RPS }
func cpuReq(s *Summary) *float64  { return s.CPUMicrosPerReq }
func rssIdle(s *Summary) *float64 { return s.RSSIdleMB }
func rssPeak(s *Summary) *float64 { return s.RSSPeakMB }

// goals evaluates issue 2's ratios: Trellis against nginx and HAProxy
// (added p99), HAProxy and Caddy (saturation), HAProxy (CPU/request), and
// the sidecar's RSS limits.
//
// Only goals whose scenario ran and whose systems were all selected are
// returned; a selected system without results shows as a note.
func goals(sums []Summary) []Goal {
	var gs []Goal
	for _, g := range goalCandidates(sums) {
		if find(sums, g.Scenario, g.systems[0]) == nil || find(sums, g.Scenario, g.systems[len(g.systems)-1]) == nil {
			continue
		}
		gs = append(gs, g)
	}
	return gs
}

func goalCandidates(sums []Summary) []Goal {
	var gs []Goal
	for _, sc := range []string{"lat-h1", "lat-h2", "lat-grpc"} {
		for _, kind := range []string{"hop", "pair"} {
			gs = append(gs,
				peerGoal(sums, sc, kind, "nginx", "added p99", addedP99, "≤ 1.0× nginx", func(t, p float64) bool { return t <= p }),
				peerGoal(sums, sc, kind, "haproxy", "added p99", addedP99, "≤ 1.2× HAProxy", func(t, p float64) bool { return t <= 1.2*p }))
		}
	}
	for _, sc := range []string{"sat-h1", "sat-h2"} {
		for _, kind := range []string{"hop", "pair"} {
			gs = append(gs,
				peerGoal(sums, sc, kind, "haproxy", "req/s", rps, "≥ 0.7× HAProxy", func(t, p float64) bool { return t >= 0.7*p }),
				peerGoal(sums, sc, kind, "caddy", "req/s", rps, "> 1.0× Caddy", func(t, p float64) bool { return t > p }))
		}
	}
	for _, sc := range []string{"lat-h1", "sat-h1"} {
		gs = append(gs, peerGoal(sums, sc, "hop", "haproxy", "CPU µs/req", cpuReq, "≤ 1.5× HAProxy", func(t, p float64) bool { return t <= 1.5*p }))
	}
	gs = append(gs,
		limitGoal(sums, "lat-h1", "RSS idle MB", rssIdle, 20),
		limitGoal(sums, "lat-h1", "RSS peak MB at 1000 qps", rssPeak, 30))
	return gs
}

func peerGoal(sums []Summary, sc, kind, peer, what string, m metric, target string, ok func(t, p float64) bool) Goal {
	g := Goal{Check: fmt.Sprintf("%s, %s: trellis-%s vs %s-%s", what, sc, kind, peer, kind), Scenario: sc, Target: target,
		systems: []string{"trellis-" + kind, peer + "-" + kind}, prec: 1}
	if what == "req/s" {
		g.prec = 0
	}
	if t := find(sums, sc, g.systems[0]); t != nil && t.Runs > 0 {
		g.Trellis = m(t)
	}
	if p := find(sums, sc, g.systems[1]); p != nil && p.Runs > 0 {
		g.Peer = m(p)
	}
	switch {
	case g.Trellis == nil:
		g.Note = "no Trellis result"
	case g.Peer == nil:
		g.Note = "no " + peer + " result"
	default:
		met := ok(*g.Trellis, *g.Peer)
		g.Met = &met
		if *g.Peer > 0 {
			r := *g.Trellis / *g.Peer
			g.Ratio = &r
		} else {
			g.Note = "peer value ≤ 0: ratio undefined"
		}
	}
	return g
}

func limitGoal(sums []Summary, sc, what string, m metric, limit float64) Goal {
	g := Goal{Check: fmt.Sprintf("%s, %s: trellis-hop", what, sc), Scenario: sc,
		Target: "< " + strconv.FormatFloat(limit, 'f', -1, 64) + " MB", systems: []string{"trellis-hop"}, prec: 1}
	if t := find(sums, sc, "trellis-hop"); t != nil {
		g.Trellis = m(t)
	}
	if g.Trellis == nil {
		g.Note = "no Trellis result"
		return g
	}
	met := *g.Trellis < limit
	g.Met = &met
	return g
}

// foreignLimit is the share of the proxy core (percent) that other
// processes may take during a run before the report flags the run.
const foreignLimit = 10

// warnings lists what makes this run's numbers doubtful.
func warnings(meta map[string]string, sums []Summary, runs []Run) []string {
	return append(runWarnings(meta), dataWarnings(sums, runs)...)
}

// runWarnings lists what makes a whole run doubtful.
func runWarnings(meta map[string]string) []string {
	var ws []string
	if meta["quick"] == "1" {
		ws = append(ws, "quick run (--quick): one short repetition, for developing the harness; not representative")
	}
	if meta["pinned"] != "1" {
		ws = append(ws, "processes were not pinned (fewer than 2 cores): saturation numbers mean little")
	}
	if v, err := strconv.ParseFloat(meta["busy_before_pct"], 64); err == nil && v > foreignLimit {
		ws = append(ws, fmt.Sprintf("the machine was %.0f%% busy just before the run: other work competes with the benchmark", v))
	}
	return ws
}

// dataWarnings lists the measured runs and summaries that look doubtful.
func dataWarnings(sums []Summary, runs []Run) []string {
	var ws []string
	for _, r := range runs {
		if r.ForeignCorePct != nil && *r.ForeignCorePct > foreignLimit {
			ws = append(ws, fmt.Sprintf("%s %s rep %d: %.0f%% of the proxy core went to other processes during the run",
				r.Scenario, r.System, r.Rep, *r.ForeignCorePct))
		}
	}
	for i := range sums {
		ws = append(ws, summaryWarnings(&sums[i], find(sums, sums[i].Scenario, "direct"))...)
	}
	return ws
}

func summaryWarnings(s, direct *Summary) []string {
	var ws []string
	if s.Runs == 0 {
		return nil
	}
	if s.Errors != nil && *s.Errors > 0 {
		ws = append(ws, fmt.Sprintf("%s %s: median %.0f failed requests per run", s.Scenario, s.System, *s.Errors))
	}
	if strings.HasPrefix(s.Scenario, "lat-") && s.RPS != nil && *s.RPS < 990 {
		ws = append(ws, fmt.Sprintf("%s %s: %.0f qps instead of 1000: the client could not keep the rate", s.Scenario, s.System, *s.RPS))
	}
	if strings.HasPrefix(s.Scenario, "sat-") && s.System != "direct" && direct != nil && direct.RPS != nil &&
		s.RPS != nil && *direct.RPS <= *s.RPS {
		ws = append(ws, fmt.Sprintf("%s: direct (%.0f req/s) is not faster than %s (%.0f req/s): the load side, not the proxy, limits this run",
			s.Scenario, *direct.RPS, s.System, *s.RPS))
	}
	return ws
}
