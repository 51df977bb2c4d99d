// Command report is the Go half of the benchmark harness (bench/run.sh):
//
//	report ports -n N
//	report render -work DIR -json FILE -md FILE
//	report merge -md FILE (-dir DIR | RESULT.json...)
//
// "ports" prints N free TCP ports on 127.0.0.1, all below the kernel's
// ephemeral range, so that client sockets cannot be holding them later.
//
// "render" reads a run's work directory (meta.env, runs.tsv and the load
// generators' outputs under out/), parses fortio's JSON, wrk's output (the
// WRKJSON line printed by configs/wrk-report.lua) and h2load's text, and
// writes the combined JSON and the markdown report (medians over
// repetitions, added latency over direct, ratios against the peers).
//
// "merge" builds bench/RESULTS.md from result files written by "render":
// every full run's file in DIR (quick runs left out), or the files named.
// Each scenario is taken whole from the newest run that measured it, and
// the header says which run (stamp, start date, command) that is.
//
// It uses the standard library only.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: report ports -n N | report render -work DIR -json FILE -md FILE | " +
			"report merge -md FILE (-dir DIR | RESULT.json...)")
	}
	switch args[0] {
	case "ports":
		return portsCmd(args[1:], out)
	case "render":
		return renderCmd(args[1:])
	case "merge":
		return mergeCmd(args[1:])
	default:
		return fmt.Errorf("unknown command %q", args[0])
	}
}

func portsCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("ports", flag.ContinueOnError)
	n := fs.Int("n", 1, "number of ports")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ports, err := freePorts(*n, 20000, ephemeralLow())
	if err != nil {
		return err
	}
	strs := make([]string, len(ports))
	for i, p := range ports {
		strs[i] = strconv.Itoa(p)
	}
	_, err = fmt.Fprintln(out, strings.Join(strs, " "))
	return err
}

// ephemeralLow returns the first port of the kernel's ephemeral range
// (net.ipv4.ip_local_port_range), 32768 when it cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil || lo <= 20100 {
		return 32768
	}
	return lo
}

// freePorts returns n distinct ports in [lo, hi) that 127.0.0.1 could
// listen on. All listeners stay open until every port is found.
func freePorts(n, lo, hi int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries > 100*n+100 {
			return nil, fmt.Errorf("found only %d of %d free ports in [%d, %d)", len(ports), n, lo, hi)
		}
		p := lo + rand.IntN(hi-lo)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		lns = append(lns, ln)
		ports = append(ports, p)
	}
	return ports, nil
}
