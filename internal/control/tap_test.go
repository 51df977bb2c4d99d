package control_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/internal/cli"
	"github.com/trellis-mesh/trellis/internal/proxy"
	"github.com/trellis-mesh/trellis/internal/telemetry/tap"
)

// tapLine is one line of GET /api/v1/tap: an event or a notice.
type tapLine struct {
	tap.Event
	Message string `json:"message"`
}

// openTap starts GET /api/v1/tap with query q and returns its lines; stop
// ends the request (the client leaving).
func (m *gmMesh) openTap(q url.Values) (lines <-chan tapLine, stop func()) {
	m.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", m.api+"/api/v1/tap?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+gmToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		m.t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		body, _ := io.ReadAll(resp.Body)
		cancel()
		m.t.Fatalf("tap: %s %s: %s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	ch := make(chan tapLine, 1024)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var l tapLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				m.t.Errorf("tap line %q: %v", sc.Text(), err)
				return
			}
			ch <- l
		}
	})
	stop = func() {
		cancel()
		wg.Wait()
	}
	m.t.Cleanup(stop)
	return ch, stop
}

// next returns the next line of lines that satisfies ok, within 10 s.
func next(t *testing.T, lines <-chan tapLine, what string, ok func(tapLine) bool) tapLine {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case l, open := <-lines:
			if !open {
				t.Fatalf("tap stream ended before %s", what)
			}
			if ok(l) {
				return l
			}
		case <-deadline:
			t.Fatalf("waited 10s for %s", what)
		}
	}
}

// TestTapMesh taps a real mesh: web's proxy calls api's over xDS-configured
// listeners, and GET /api/v1/tap sees both sides with their fields,
// redacts captured headers, caps the rate, and ends the proxies'
// subscriptions when the client leaves.
func TestTapMesh(t *testing.T) {
	m := startGMControl(t)
	ports := freePorts(t, 2) // web's outbound, api-1's inbound
	app := startEcho(t, "api-1")
	m.apply(`kind: Mesh
apiVersion: trellis.dev/v1alpha1
metadata: {name: default}
spec: {mtls: {mode: DISABLED}, tap: {redactHeaders: [X-Secret]}}
---
kind: Service
apiVersion: trellis.dev/v1alpha1
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, protocol: http}]}
---
kind: Service
apiVersion: trellis.dev/v1alpha1
metadata: {name: api}
spec: {selector: {app: api}, ports: [{port: 80, protocol: http}]}
`)
	dp := func(name, labels string, spec string) string {
		return fmt.Sprintf("apiVersion: trellis.dev/v1alpha1\nkind: Dataplane\nmetadata: {name: %s, labels: {%s}}\nspec:\n  address: 127.0.0.1\n%s", name, labels, spec)
	}
	web := m.proxy(dp("web-1", "app: web", fmt.Sprintf("  outbound: [{service: api, localPort: %d}]\n", ports[0])))
	api := m.proxy(dp("api-1", "app: api", fmt.Sprintf("  inbound: [{port: %d, servicePort: 80, appPort: %d}]\n", ports[1], app)))
	pollUntil(t, "the mesh's configuration and tap streams", func() (bool, string) {
		ok := hasHosts(web, "default/api:80") && len(web.ListenerAddrs()) > 0 && len(api.ListenerAddrs()) > 0 &&
			slices.Equal(m.c.Tap().Proxies(), []string{"default/api-1", "default/web-1"})
		return ok, fmt.Sprint(web.ListenerAddrs(), api.ListenerAddrs(), m.c.Tap().Proxies())
	})
	call := func(path string) {
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d%s", ports[0], path), nil)
		req.Header.Set("Authorization", "Bearer app-secret")
		req.Header.Set("X-Secret", "s3cr3t")
		req.Header.Set("X-Visible", "yes")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
	}

	// No tap: the proxies have no subscription, so requests pay nothing.
	call("/before")
	if web.Tap().Active() || api.Tap().Active() {
		t.Fatal("a proxy has a subscription before any tap")
	}

	lines, stop := m.openTap(url.Values{"target": {"service/default/api"}, "headers": {"true"}, "path": {"/tapped"}})
	if l := next(t, lines, "the opening notice", func(tapLine) bool { return true }); l.Type != "notice" ||
		l.Message != "tapping service default/api: 1 proxy serving it, 2 may call it" {
		t.Fatalf("first line %+v", l)
	}
	pollUntil(t, "subscriptions on both proxies", func() (bool, string) {
		return web.Tap().Active() && api.Tap().Active(), fmt.Sprint(web.Tap().Subscriptions(), api.Tap().Subscriptions())
	})
	call("/untapped") // filtered out by the path prefix
	call("/tapped?q=1")
	var in, out *tapLine
	for in == nil || out == nil {
		l := next(t, lines, "an inbound and an outbound event", func(l tapLine) bool { return l.Type == "event" })
		if l.Path != "/tapped?q=1" {
			t.Fatalf("event of path %q: the path filter let it through", l.Path)
		}
		switch l.Direction {
		case tap.Inbound:
			in = &l
		case tap.Outbound:
			out = &l
		}
	}
	t.Logf("inbound: %+v\noutbound: %+v", in.Event, out.Event)
	ib := fmt.Sprintf("inbound:%d", ports[1])
	if in.Dataplane != "default/api-1" || in.Destination.Service != "default/api" || in.Destination.Cluster != ib ||
		in.Destination.Address != fmt.Sprintf("127.0.0.1:%d", ports[1]) || in.Method != "GET" || in.Status != 200 ||
		in.TLS || in.Source.Identity != "" || in.DurationMs <= 0 || in.BytesOut == 0 || in.ResponseFlags != "-" || in.RequestID == "" {
		t.Errorf("inbound event %+v", in.Event)
	}
	if out.Dataplane != "default/web-1" || out.Source.Service != "default/web" || out.Destination.Service != "default/api" ||
		out.Destination.Cluster != "default/api:80" || out.Destination.Address != fmt.Sprintf("127.0.0.1:%d", ports[1]) ||
		out.Status != 200 || out.Authority != fmt.Sprintf("127.0.0.1:%d", ports[0]) || out.RequestID != in.RequestID || out.Destination.Identity != "" {
		t.Errorf("outbound event %+v", out.Event)
	}
	for _, e := range []*tapLine{in, out} {
		h := e.RequestHeaders
		if h["authorization"] != tap.Redacted || h["x-secret"] != tap.Redacted || h["x-visible"] != "yes" || len(e.ResponseHeaders) == 0 {
			t.Errorf("%s headers: request %v response %v; want authorization and x-secret redacted", e.Direction, h, e.ResponseHeaders)
		}
	}

	// The client leaves: every subscription ends.
	stop()
	pollUntil(t, "the subscriptions to end", func() (bool, string) {
		return !web.Tap().Active() && !api.Tap().Active(), fmt.Sprint(web.Tap().Subscriptions(), api.Tap().Subscriptions())
	})

	t.Run("bodies", func(t *testing.T) { tapBodies(t, m, web, api, ports[0]) })
	t.Run("cli", func(t *testing.T) { tapCLI(t, m, ports[0]) })
	t.Run("rate cap", func(t *testing.T) { tapRateCap(t, m, api, ports[0]) })
	t.Run("errors", func(t *testing.T) { tapErrors(t, m) })
}

// tapRateCap taps api-1 at 5 events a second while web sends it requests
// as fast as it can: at most the burst plus 5 a second arrive, and a
// notice counts the rest.
func tapRateCap(t *testing.T, m *gmMesh, api *proxy.Proxy, port int) {
	lines, stop := m.openTap(url.Values{"target": {"dataplane/api-1"}, "maxRps": {"5"}})
	defer stop()
	next(t, lines, "the opening notice", func(l tapLine) bool { return l.Type == "notice" })
	pollUntil(t, "api-1's subscription", func() (bool, string) { return api.Tap().Active(), "" })
	start := time.Now()
	const sent = 200
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range sent / 4 {
				resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	events := 0
	l := next(t, lines, "the drop notice", func(l tapLine) bool {
		if l.Type == "event" {
			events++
		}
		return l.Type == "notice" && strings.HasSuffix(l.Message, "events dropped by the rate cap")
	})
	elapsed := time.Since(start)
	if limit := 5 + int(5*elapsed.Seconds()) + 1; events < 1 || events > limit {
		t.Errorf("%d events in %v at maxRps 5; want 1..%d", events, elapsed, limit)
	}
	t.Logf("%d of %d requests tapped in %v; %s", events, sent, elapsed, l.Message)
}

// tapBodies taps api with body=16 while web POSTs to it through both
// proxies: the inbound and the outbound event carry the first 16 bytes of
// the request body and of the echo's response, marked truncated, and the
// proxies capture nothing once the tap ends.
func tapBodies(t *testing.T, m *gmMesh, web, api *proxy.Proxy, port int) {
	lines, stop := m.openTap(url.Values{"target": {"api"}, "body": {"16"}, "method": {"POST"}})
	next(t, lines, "the opening notice", func(l tapLine) bool { return l.Type == "notice" })
	pollUntil(t, "subscriptions on both proxies", func() (bool, string) {
		return web.Tap().Active() && api.Tap().Active(), fmt.Sprint(web.Tap().Subscriptions(), api.Tap().Subscriptions())
	})
	const sent = "hello from web, tapped with its body"
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/bodies", port), "text/plain", strings.NewReader(sent))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(got), `{"name":"api-1"`) {
		t.Fatalf("POST /bodies: %d %s", resp.StatusCode, got)
	}
	seen := map[string]bool{}
	for len(seen) < 2 {
		l := next(t, lines, "an inbound and an outbound event with bodies", func(l tapLine) bool { return l.Type == "event" })
		t.Logf("%s: requestBody %q (truncated %t) responseBody %q (truncated %t)", l.Direction,
			deref(l.RequestBody), l.RequestBodyTruncated, deref(l.ResponseBody), l.ResponseBodyTruncated)
		if l.RequestBody == nil || *l.RequestBody != sent[:16] || !l.RequestBodyTruncated || l.RequestBodyEncoding != "" ||
			l.ResponseBody == nil || *l.ResponseBody != string(got[:16]) || !l.ResponseBodyTruncated || l.ResponseBodyEncoding != "" {
			t.Errorf("%s event %+v", l.Direction, l.Event)
		}
		seen[l.Direction] = true
	}
	stop()
	pollUntil(t, "the subscriptions to end", func() (bool, string) {
		return !web.Tap().Active() && !api.Tap().Active(), fmt.Sprint(web.Tap().Subscriptions(), api.Tap().Subscriptions())
	})
	if n := api.Tap().BodyLimit(true, "POST", "api", "/bodies"); n != 0 {
		t.Errorf("api-1 still captures %d bytes of bodies after the tap ended", n)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<none>"
	}
	return *s
}

func tapErrors(t *testing.T, m *gmMesh) {
	for _, tc := range []struct {
		query, token string
		code         int
		msg          string
	}{
		{"target=service/default/nope", gmToken, 404, "service default/nope"},
		{"target=dataplane/default/nope", gmToken, 404, "dataplane default/nope"},
		{"", gmToken, 400, "target: required"},
		{"target=a/b/c/d", gmToken, 400, "target:"},
		{"target=api&maxRps=0", gmToken, 400, "maxRps"},
		{"target=api&maxRps=1001", gmToken, 400, "maxRps"},
		{"target=api&headers=maybe", gmToken, 400, "headers"},
		{"target=api&body=4097", gmToken, 400, "body"},
		{"target=api&body=-1", gmToken, 400, "body"},
		{"target=api&path=nope", gmToken, 400, "path"},
		{"target=api", "wrong", 401, "token"},
	} {
		req, _ := http.NewRequest("GET", m.api+"/api/v1/tap?"+tc.query, nil)
		req.Header.Set("Authorization", "Bearer "+tc.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(body), tc.msg) {
			t.Errorf("%q: %d %s; want %d naming %q", tc.query, resp.StatusCode, body, tc.code, tc.msg)
		}
	}
}

// tapCLI runs trellis tap (text, then JSON) with --count while web calls
// api, as a user would.
func tapCLI(t *testing.T, m *gmMesh, port int) {
	for _, tc := range []struct {
		args []string
		want *regexp.Regexp
	}{
		{[]string{"tap", "api", "--count", "2", "--method", "GET"},
			regexp.MustCompile(`^req id=1 dp=default/\S+ (inbound|outbound) src=\S+ dst=default/api\S* tls=false :method=GET :authority=127\.0\.0\.1:\d+ :path=/cli\nrsp id=1 :status=200 latency=\d+\.\d{3}ms bytesIn=0 bytesOut=\d+ flags=-\nreq id=2 .*\nrsp id=2 .*\n$`)},
		{[]string{"tap", "dataplane/default/api-1", "--count", "1", "--body", "8"},
			regexp.MustCompile(`^req id=1 .*\nrsp id=1 :status=200 .*\n  > body: ""\n  < body: "\{\\"name\\":" \(truncated\)\n$`)},
		{[]string{"tap", "dataplane/default/api-1", "--count", "1", "-o", "json"},
			regexp.MustCompile(`^\{"type":"notice","message":"tapping dataplane default/api-1: 1 proxy"\}\n\{"type":"event",.*"dataplane":"default/api-1","direction":"inbound",.*\}\n$`)},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		var out, errOut bytes.Buffer
		done := make(chan int, 1)
		go func() {
			done <- cli.Main(ctx, append(tc.args, "--server", m.api, "--token", gmToken), &out, &errOut)
		}()
		code := -1
		for code < 0 {
			select {
			case code = <-done:
			case <-time.After(50 * time.Millisecond):
				resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/cli", port))
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
		cancel()
		if code != 0 || !tc.want.MatchString(out.String()) {
			t.Errorf("trellis %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(tc.args, " "), code, out.String(), errOut.String())
		}
	}
}
