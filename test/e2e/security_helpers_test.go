package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// This file holds the building blocks of the security scenarios (issue 5):
// a mesh whose Mesh, Services and AccessPolicies the test chooses, proxies
// started with a chosen token, and a load generator that keeps one HTTP/2
// connection open while it also opens new ones.

// secureMesh is a running mesh of echo apps behind proxies with mutual TLS.
type secureMesh struct {
	cp      *controlPlane
	dir     string
	proxies map[string]*meshProxy
	files   map[string]string // instance name → its Dataplane file
	tokens  map[string]string // service → its token file
}

// startSecureMesh applies resources (a Mesh and Services, and whatever
// else the scenario needs) and the instances' Dataplanes, issues one token
// per service with `trellis token create`, starts an echo and a proxy per
// instance (flags adds proxy flags by instance name) and waits until every
// proxy is ready.
func startSecureMesh(t *testing.T, cp *controlPlane, resources string, flags map[string][]string, instances ...instance) *secureMesh {
	t.Helper()
	m := &secureMesh{cp: cp, dir: t.TempDir(), proxies: map[string]*meshProxy{},
		files: map[string]string{}, tokens: map[string]string{}}
	ports := freePorts(t, 2*len(instances))
	docs := []string{resources}
	for i, in := range instances {
		e := start(t, "echo", "--listen", "127.0.0.1:0", "--name", in.name, "--version", "v1", "--drain-timeout", "2s")
		appPort, err := strconv.Atoi(e.waitLine(`listening on http://127\.0\.0\.1:(\d+)`)[1])
		if err != nil {
			t.Fatal(err)
		}
		doc := dataplaneDoc(in, ports[2*i], appPort, ports[2*i+1])
		docs = append(docs, doc)
		m.files[in.name] = writeFile(t, m.dir, in.name+".yaml", doc)
		m.proxies[in.name] = &meshProxy{inbound: fmt.Sprintf("http://127.0.0.1:%d/", ports[2*i])}
		if in.client {
			m.proxies[in.name].outbound = fmt.Sprintf("http://127.0.0.1:%d/", ports[2*i+1])
		}
	}
	applyYAML(t, cp.cfg, m.dir, "mesh.yaml", strings.Join(docs, "---\n"))
	for _, in := range instances {
		if m.tokens[in.app] == "" {
			m.tokens[in.app] = m.token(t, in.app)
		}
	}
	for _, in := range instances {
		mp := startProxy(t, cp, m.files[in.name], m.tokens[in.app], flags[in.name]...)
		mp.inbound, mp.outbound = m.proxies[in.name].inbound, m.proxies[in.name].outbound
		m.proxies[in.name] = mp
	}
	for _, in := range instances {
		waitReady(t, in.name, m.proxies[in.name], 30*time.Second)
	}
	return m
}

// token issues a dataplane token for service with `trellis token create`
// and returns the file holding it.
func (m *secureMesh) token(t *testing.T, service string) string {
	t.Helper()
	tok := strings.TrimSpace(mustCLI(t, m.cp.cfg, "token", "create", "--mesh", "default", "--service", service))
	return writeFile(t, m.dir, service+".token", tok+"\n")
}

// startProxy runs `trellis proxy` for the Dataplane in dpFile with the
// token in tokenFile and returns once its admin interface listens.
func startProxy(t *testing.T, cp *controlPlane, dpFile, tokenFile string, extra ...string) *meshProxy {
	t.Helper()
	args := append([]string{"proxy", "--control-plane", cp.xds, "--dataplane", dpFile,
		"--token-file", tokenFile, "--admin-address", "127.0.0.1:0", "--drain-timeout", "2s"}, extra...)
	p := start(t, args...)
	return &meshProxy{p: p, admin: "http://" + p.waitLine(`admin listening on (\S+)`)[1]}
}

// waitReady polls a proxy's /ready until it answers 200.
func waitReady(t *testing.T, name string, mp *meshProxy, within time.Duration) {
	t.Helper()
	poll(t, within, name+" to be ready", func() (bool, string) {
		code, body, err := status(mp.admin + "/ready")
		if err != nil {
			return false, err.Error()
		}
		return code == 200, body
	})
}

// status sends GET url and returns the status code and body.
func status(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	return resp.StatusCode, readAll(resp), nil
}

// answer is one HTTP answer as the scenarios check it.
type answer struct {
	code   int
	reason string // x-trellis-reason
	body   string
}

func (a answer) String() string { return fmt.Sprintf("%d %q %q", a.code, a.reason, a.body) }

// send sends GET base+path through a plain TCP connection, writing the
// request line by hand: Go's client would clean a path such as
// /public/../admin before sending it, and the proxy must see it as an
// attacker would send it.
func send(base, path string) (answer, error) {
	host := strings.TrimSuffix(strings.TrimPrefix(base, "http://"), "/")
	conn, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		return answer{}, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n", path); err != nil {
		return answer{}, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return answer{}, err
	}
	return answer{code: resp.StatusCode, reason: resp.Header.Get("X-Trellis-Reason"), body: readAll(resp)}, nil
}

// waitAnswer polls GET base+path until the answer satisfies ok.
func waitAnswer(t *testing.T, base, path, what string, ok func(answer) bool) answer {
	t.Helper()
	var a answer
	poll(t, 20*time.Second, what, func() (bool, string) {
		var err error
		if a, err = send(base, path); err != nil {
			return false, err.Error()
		}
		return ok(a), a.String()
	})
	return a
}

// metricValue is the value of the first series of metrics whose name and
// labels include every one of parts (0 when none does).
func metricValue(metrics string, parts ...string) float64 {
	for l := range strings.Lines(metrics) {
		if strings.HasPrefix(l, "#") {
			continue
		}
		matched := true
		for _, p := range parts {
			matched = matched && strings.Contains(l, p)
		}
		if !matched {
			continue
		}
		f := strings.Fields(l)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			return v
		}
	}
	return 0
}

// caStatus is what the scenarios read of `trellis ca status -o json` and
// `trellis ca rotate -o json`.
type caStatus struct {
	Phase    string `json:"phase"`
	Step     string `json:"step"`
	Waiting  string `json:"waiting"`
	Progress struct {
		ProxiesBehind int `json:"proxiesBehind"`
		LeavesFromOld int `json:"leavesFromOld"`
	} `json:"progress"`
}

// caCommand runs `trellis ca ARGS -o json` for mesh default and returns
// its exit code, the status it printed (on success) and its stderr.
func caCommand(t *testing.T, cfg string, args ...string) (int, caStatus, string) {
	t.Helper()
	code, out, errOut := cli(t, cfg, append(append([]string{"ca"}, args...), "-o", "json")...)
	var st caStatus
	if code == 0 {
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("trellis ca %s -o json: %v:\n%s", strings.Join(args, " "), err, out)
		}
	}
	return code, st, errOut
}

// installedSerials are the serials of the certificates a proxy's log says
// it installed, in order.
func installedSerials(p *proc) []string {
	var serials []string
	for _, m := range installedLine.FindAllStringSubmatch(p.stderr(), -1) {
		serials = append(serials, m[1])
	}
	return serials
}

var installedLine = regexp.MustCompile(`msg="certificate installed".* serial=(\w+)`)

// load sends GET requests to url at a steady rate over one long-lived
// HTTP/2 (h2c) connection, and now and then over a new HTTP/1.1
// connection, until stop is closed; it counts the outcomes.
type load struct {
	sent, failed, fresh atomic.Int64
	dials               atomic.Int64 // connections the long-lived client opened
	mu                  sync.Mutex
	failures            []string // the first few failures, with their time
}

func (l *load) fail(what string) {
	l.failed.Add(1)
	l.mu.Lock()
	if len(l.failures) < 10 {
		l.failures = append(l.failures, time.Now().Format("15:04:05.000")+" "+what)
	}
	l.mu.Unlock()
}

// run sends rate requests a second over the long-lived connection and one
// request every freshEvery over a new connection, until ctx ends.
func (l *load) run(ctx context.Context, url string, rate int, freshEvery time.Duration) {
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	long := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		Protocols: &protocols,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			l.dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	defer long.CloseIdleConnections()
	fresh := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var wg sync.WaitGroup
	one := func(c *http.Client, wantProto string) {
		defer wg.Done()
		l.sent.Add(1)
		resp, err := c.Get(url)
		if err != nil {
			l.fail(err.Error())
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode != 200:
			l.fail(fmt.Sprintf("%d %s", resp.StatusCode, resp.Header.Get("X-Trellis-Reason")))
		case resp.Proto != wantProto:
			l.fail("answered over " + resp.Proto + ", want " + wantProto)
		}
	}
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	freshTick := time.NewTicker(freshEvery)
	defer freshTick.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-tick.C:
			wg.Add(1)
			go one(long, "HTTP/2.0")
		case <-freshTick.C:
			l.fresh.Add(1)
			wg.Add(1)
			go one(fresh, "HTTP/1.1")
		}
	}
}
