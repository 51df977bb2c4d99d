// Command pushscale measures how fast `trellis control` pushes a change to
// many proxies: it starts a real control plane, fills it with services and
// endpoints, connects N simulated ADS clients (real gRPC streams that
// subscribe and ACK as a sidecar does), then changes a route every client
// uses and times each client's arrival.
//
//	go run ./bench/pushscale -proxies 100,1000 -services 1000 -endpoints 10000
//
// It prints a Markdown table for bench/RESULTS.md.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/trellis-mesh/trellis/internal/control/client"
)

func main() {
	var (
		proxies   = flag.String("proxies", "100,1000", "comma-separated numbers of simulated proxies, one run each")
		services  = flag.Int("services", 1000, "services in the mesh")
		endpoints = flag.Int("endpoints", 10000, "endpoints (Dataplanes applied by hand) across the services")
		outbound  = flag.Int("outbound", 10, "services each simulated proxy calls (one is the route that changes)")
		pushes    = flag.Int("pushes", 10, "route changes measured per run")
		binary    = flag.String("trellis", "", "trellis binary (default: build ./cmd/trellis)")
	)
	flag.StringVar(&profileDir, "profile", "", "directory to save the control plane's CPU profile (during the pushes) and heap profile (after)")
	flag.Parse()
	raiseFileLimit()
	bin := *binary
	if bin == "" {
		bin = filepath.Join(os.TempDir(), "trellis-pushscale")
		build := exec.Command("go", "build", "-o", bin, "./cmd/trellis")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fatal("build: %v", err)
		}
	}
	fmt.Printf("| proxies | services | endpoints | push p50 | push p99 | push max | CP CPU per push | CP RSS | bytes per proxy per push |\n")
	fmt.Printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, f := range strings.Split(*proxies, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			fatal("-proxies %q: want positive numbers", *proxies)
		}
		r := run(bin, n, *services, *endpoints, *outbound, *pushes)
		fmt.Printf("| %d | %d | %d | %s | %s | %s | %s | %.0f MB | %.0f |\n", n, *services, *endpoints,
			ms(r.p50), ms(r.p99), ms(r.max), ms(r.cpuPerPush), float64(r.rss)/(1<<20), r.bytesPerProxy)
	}
}

type result struct {
	p50, p99, max, cpuPerPush time.Duration
	rss                       int64
	bytesPerProxy             float64
}

func run(bin string, n, services, endpoints, outbound, pushes int) result {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "pushscale-")
	if err != nil {
		fatal("%v", err)
	}
	defer os.RemoveAll(dir)
	cp, api, xds := startControl(bin, dir)
	defer func() {
		cp.Process.Signal(syscall.SIGTERM)
		cp.Wait()
	}()
	token, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		fatal("token: %v", err)
	}
	cl, err := client.New(client.Config{Server: "http://" + api, Token: strings.TrimSpace(string(token))})
	if err != nil {
		fatal("%v", err)
	}
	start := time.Now()
	applyMesh(ctx, cl, services, endpoints)
	fmt.Fprintf(os.Stderr, "applied %d services and %d endpoints in %s\n", services, endpoints, time.Since(start).Round(time.Millisecond))

	clients := make([]*simClient, n)
	var conns []*grpc.ClientConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range clients {
		if i%20 == 0 {
			conn, err := grpc.NewClient(xds, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				fatal("%v", err)
			}
			conns = append(conns, conn)
		}
		var out []any
		for k := 0; k < outbound; k++ {
			svc := 0 // every proxy calls svc-0000, whose route changes
			if k > 0 {
				svc = (i*7 + k*13) % services
			}
			out = append(out, map[string]any{"service": svcName(svc), "localPort": 20000 + k})
		}
		name := fmt.Sprintf("client-%05d", i)
		doc := map[string]any{
			"apiVersion": "trellis.dev/v1alpha1", "kind": "Dataplane",
			"metadata": map[string]any{"name": name, "namespace": "default", "labels": map[string]any{"app": "client"}},
			"spec":     map[string]any{"address": "127.0.0.1", "outbound": out},
		}
		clients[i] = newSimClient("default/"+name, doc, "x-push")
		go clients[i].run(ctx, conns[len(conns)-1])
	}
	start = time.Now()
	for _, c := range clients {
		select {
		case <-c.initial:
		case <-time.After(5 * time.Minute):
			fatal("%s got no initial configuration", c)
		}
	}
	fmt.Fprintf(os.Stderr, "%d proxies connected and configured in %s\n", n, time.Since(start).Round(time.Millisecond))

	stopProfile := startProfile(api, strings.TrimSpace(string(token)), n)
	var lat []time.Duration
	var cpu time.Duration
	var bytesTotal int64
	for p := 0; p < pushes; p++ {
		marker := fmt.Sprintf("push-%d", p)
		cpu0 := cpuTime(cp.Process.Pid)
		var b0 int64
		for _, c := range clients {
			b0 += c.bytes.Load()
		}
		t0 := time.Now()
		route := fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: hot, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: %s, port: 8080}]
  rules:
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-push, value: %s}]}
    backendRefs: [{name: %s, port: 8080}]
`, svcName(0), marker, svcName(0))
		if _, err := cl.Apply(ctx, strings.NewReader(route)); err != nil {
			fatal("apply: %v", err)
		}
		deadline := time.Now().Add(2 * time.Minute)
		for _, c := range clients {
			for {
				at, ok := c.arrival(marker)
				if ok {
					lat = append(lat, at.Sub(t0))
					break
				}
				if time.Now().After(deadline) {
					fatal("%s never got %s", c, marker)
				}
				time.Sleep(time.Millisecond) // polling the clients' arrival records
			}
		}
		// Let the control plane finish (ACK handling) before reading CPU.
		time.Sleep(200 * time.Millisecond)
		cpu += cpuTime(cp.Process.Pid) - cpu0
		for _, c := range clients {
			bytesTotal += c.bytes.Load()
		}
		bytesTotal -= b0
	}
	stopProfile()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return result{
		p50: lat[len(lat)/2], p99: lat[len(lat)*99/100], max: lat[len(lat)-1],
		cpuPerPush:    cpu / time.Duration(pushes),
		rss:           rssBytes(cp.Process.Pid),
		bytesPerProxy: float64(bytesTotal) / float64(pushes*n),
	}
}

var profileDir string

// startProfile fetches a CPU profile of the control plane while the pushes
// run; the returned function waits for it and saves a heap profile.
func startProfile(api, token string, n int) func() {
	if profileDir == "" {
		return func() {}
	}
	get := func(path, file string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+api+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Fprintln(os.Stderr, "profile:", err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(filepath.Join(profileDir, fmt.Sprintf("%s-%d.pprof", file, n)))
		if err != nil {
			fmt.Fprintln(os.Stderr, "profile:", err)
			return
		}
		defer f.Close()
		io.Copy(f, resp.Body)
	}
	done := make(chan struct{})
	go func() { get("/debug/pprof/profile?seconds=5", "cpu"); close(done) }()
	return func() {
		<-done
		get("/debug/pprof/heap", "heap")
	}
}

func svcName(i int) string { return fmt.Sprintf("svc-%04d", i) }

// applyMesh applies the services and the hand-registered endpoints in
// chunks.
func applyMesh(ctx context.Context, cl *client.Client, services, endpoints int) {
	var buf bytes.Buffer
	flush := func() {
		if buf.Len() == 0 {
			return
		}
		if _, err := cl.Apply(ctx, bytes.NewReader(buf.Bytes())); err != nil {
			fatal("apply: %v", err)
		}
		buf.Reset()
	}
	docs := 0
	add := func(s string) {
		buf.WriteString("---\n" + s)
		if docs++; docs%500 == 0 {
			flush()
		}
	}
	for i := 0; i < services; i++ {
		add(fmt.Sprintf("apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: %s}\nspec:\n  selector: {app: %s}\n  ports: [{port: 8080, protocol: http}]\n", svcName(i), svcName(i)))
	}
	for i := 0; i < endpoints; i++ {
		add(fmt.Sprintf("apiVersion: trellis.dev/v1alpha1\nkind: Dataplane\nmetadata: {name: ep-%05d, labels: {app: %s}}\nspec:\n  address: 10.%d.%d.%d\n  inbound: [{port: 8080, appPort: 18080}]\n",
			i, svcName(i%services), (i>>16)&255, (i>>8)&255, i&255))
	}
	flush()
}

var listening = regexp.MustCompile(`api on http://(\S+), xds on (\S+),`)

// startControl runs `trellis control` on free ports and returns its
// addresses once it serves.
func startControl(bin, dir string) (*exec.Cmd, string, string) {
	cmd := exec.Command(bin, "control", "--data-dir", dir, "--api-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0", "--log-level", "warn")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		fatal("%v", err)
	}
	if err := cmd.Start(); err != nil {
		fatal("start control: %v", err)
	}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if m := listening.FindStringSubmatch(sc.Text()); m != nil {
			go func() {
				for sc.Scan() {
					fmt.Fprintln(os.Stderr, "control:", sc.Text())
				}
			}()
			return cmd, m[1], m[2]
		}
		fmt.Fprintln(os.Stderr, "control:", sc.Text())
	}
	fatal("control plane exited before serving")
	return nil, "", ""
}

// cpuTime reads a process's user+system CPU time from /proc.
func cpuTime(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start after ')'.
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

// rssBytes reads a process's resident set size.
func rssBytes(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pushscale: "+format+"\n", args...)
	os.Exit(1)
}
