package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// The proof of issue 5, driven through the binaries: access policies
// enforced by the destination sidecar, certificates refused to a proxy
// whose token grants another service or was revoked, and a CA rotation
// under load that loses no request.

// securityServices are the Services of the security scenarios.
const securityServices = `apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, protocol: http}]}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: api}
spec: {selector: {app: api}, ports: [{port: 80, protocol: http}]}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: other}
spec: {selector: {app: other}, ports: [{port: 80, protocol: http}]}
`

// accessPolicy is an AccessPolicy targeting api.
func accessPolicy(name, action, rules string) string {
	return fmt.Sprintf(`apiVersion: trellis.dev/v1alpha1
kind: AccessPolicy
metadata: {name: %s}
spec:
  targetRefs: [{group: "", kind: Service, name: api}]
  action: %s
  rules:
%s`, name, action, rules)
}

var (
	webSide   = instance{name: "web-1", app: "web", client: true}
	otherSide = instance{name: "other-1", app: "other", client: true}
	apiSide   = instance{name: "api-1", app: "api"}
)

func TestAccessPolicy(t *testing.T) {
	cp := startControl(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0", "--name", "cp-1")
	resources := `apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata: {name: default}
spec: {mtls: {mode: STRICT}, accessPolicy: {default: DENY}}
---
` + securityServices + "---\n" + accessPolicy("api-callers", "ALLOW", "  - from: [{service: web}]\n")
	// api-1 logs at debug level: audit decisions are debug lines.
	m := startSecureMesh(t, cp, resources, map[string][]string{"api-1": {"--log-level", "debug"}},
		webSide, otherSide, apiSide)
	web, other, api := m.proxies["web-1"].outbound, m.proxies["other-1"].outbound, m.proxies["api-1"]
	ok := func(a answer) bool { return a.code == 200 }

	// Deny by default, web allowed: web's call succeeds, other's is refused
	// by the api sidecar with the reason of an allow-list no rule matched.
	waitAnswer(t, web, "/", "web to reach api", ok)
	const noAllow = "rbac_access_denied_matched_policy[none]"
	a := waitAnswer(t, other, "/", "other to be refused by api", func(a answer) bool { return a.code == 403 })
	if a.reason != noAllow {
		t.Errorf("other → api: %v, want 403 with x-trellis-reason %s", a, noAllow)
	}
	// A DENY policy naming other: the refusal names it.
	applyYAML(t, cp.cfg, m.dir, "deny-other.yaml", accessPolicy("deny-other", "DENY", "  - from: [{service: other}]\n"))
	const denyOther = "rbac_access_denied_matched_policy[default/deny-other/rule/0]"
	waitAnswer(t, other, "/", "other's refusal to name deny-other", func(a answer) bool { return a.code == 403 && a.reason == denyOther })
	if a, err := send(web, "/"); err != nil || a.code != 200 {
		t.Errorf("web → api with deny-other applied: %v %v, want 200", a, err)
	}
	enforced := get(t, api.admin+"/stats/prometheus")
	if v := metricValue(enforced, "trellis_rbac_decisions_total{", `mode="enforce"`, `result="denied"`); v < 1 {
		t.Errorf("api-1 counted %v enforced denials, want at least 1:\n%s", v, rbacSeries(enforced))
	}

	// AUDIT: a rule auditing GET /admin counts and logs what it would deny,
	// and blocks nothing.
	shadow := func() float64 {
		return metricValue(get(t, api.admin+"/stats/prometheus"), "trellis_rbac_decisions_total{", `mode="shadow"`, `result="denied"`)
	}
	before := shadow()
	applyYAML(t, cp.cfg, m.dir, "audit-admin.yaml", accessPolicy("audit-admin", "AUDIT",
		"  - from: [{any: true}]\n    to: [{methods: [GET], paths: [{prefix: /admin}]}]\n"))
	audited := 0
	poll(t, 20*time.Second, "the audit policy to count GET /admin", func() (bool, string) {
		a, err := send(web, "/admin")
		if err != nil {
			return false, err.Error()
		}
		if a.code != 200 {
			t.Fatalf("GET /admin with an AUDIT policy: %v, want 200 (audit never blocks)", a)
		}
		audited++
		return shadow() > before, fmt.Sprintf("shadow denials %v (before %v)", shadow(), before)
	})
	t.Logf("audit: %d GET /admin answered 200; shadow denials %v → %v", audited, before, shadow())
	api.p.waitStderr(`policy=default/audit-admin/rule/0`)
	if !strings.Contains(api.p.stderr(), `msg="shadow rules decision"`) {
		t.Errorf("api-1's debug log has no shadow rules decision line")
	}

	// DENY on a path prefix: /admin is refused naming the policy, /public
	// is not, and the classic normalization bypasses are refused too.
	applyYAML(t, cp.cfg, m.dir, "no-admin.yaml", accessPolicy("no-admin", "DENY",
		"  - from: [{any: true}]\n    to: [{paths: [{prefix: /admin/}, {exact: /admin}]}]\n"))
	const noAdmin = "rbac_access_denied_matched_policy[default/no-admin/rule/0]"
	waitAnswer(t, web, "/admin", "/admin to be denied by no-admin", func(a answer) bool { return a.code == 403 })
	// Allowed paths reach the app normalized.
	for path, normal := range map[string]string{"/public": "/public", "/public/x": "/public/x",
		"/administrator": "/administrator", "/public/./x": "/public/x", "/x/../public": "/public",
		"//public": "/public", "/%70ublic": "/public"} {
		a, err := send(web, path)
		if err != nil || a.code != 200 {
			t.Errorf("GET %s with no-admin applied: %v %v, want 200", path, a, err)
			continue
		}
		var echoed struct{ Path string }
		if err := json.Unmarshal([]byte(a.body), &echoed); err != nil || echoed.Path != normal {
			t.Errorf("GET %s: the app received path %q (%v), want %q", path, echoed.Path, err, normal)
		}
	}
	for _, path := range []string{
		"/admin", "/admin/", "/admin/users",
		"/public/../admin", "/public/./../admin/x", "/./admin",
		"//admin", "/admin//", "///admin/users",
		"/%61dmin", "/%61%64%6d%69%6e/x", "/ad%6Din",
		"/public/%2e%2e/admin", "/public/%2E%2E/admin", "/%2e/admin",
		"/public/..%2Fadmin", "/public%2F..%2Fadmin", "/public/..%5Cadmin",
	} {
		a, err := send(web, path)
		switch {
		case err != nil:
			t.Errorf("GET %s: %v", path, err)
		case a.code != 403 || a.reason != noAdmin:
			t.Errorf("GET %s: %v, want 403 with x-trellis-reason %s", path, a, noAdmin)
		}
	}
}

// rbacSeries are the trellis_rbac_decisions_total lines of metrics.
func rbacSeries(metrics string) string {
	var b strings.Builder
	for l := range strings.Lines(metrics) {
		if strings.HasPrefix(l, "trellis_rbac_decisions_total") {
			b.WriteString(l)
		}
	}
	return b.String()
}

func TestTokenForAnotherService(t *testing.T) {
	cp := startControl(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0", "--name", "cp-1")
	resources := "apiVersion: trellis.dev/v1alpha1\nkind: Mesh\nmetadata: {name: default}\nspec: {}\n---\n" + securityServices
	m := startSecureMesh(t, cp, resources, nil, webSide, apiSide)

	// A proxy with its certificate exports the time it has left
	// (docs/security.md, Expiry: proxies export their leaf series).
	for name, service := range map[string]string{"web-1": "web", "api-1": "api"} {
		metrics := get(t, m.proxies[name].admin+"/stats/prometheus")
		left := metricValue(metrics, "trellis_identity_cert_expiry_seconds{", `kind="leaf"`, `service="`+service+`"`)
		if left <= 0 || left > 24*3600 {
			t.Errorf("%s: trellis_identity_cert_expiry_seconds{kind=\"leaf\",service=%q} = %v, want the seconds its 24h certificate has left",
				name, service, left)
		}
	}

	// A proxy whose Dataplane runs api, holding web's token (which web-1
	// is ready with): refused api's certificate, never ready.
	ports := freePorts(t, 1)
	dp := writeFile(t, m.dir, "api-x.yaml", dataplaneDoc(instance{name: "api-x", app: "api"}, ports[0], 1, 0))
	x := startProxy(t, cp, dp, m.tokens["web"])
	x.p.waitStderr("PermissionDenied")
	for _, want := range []string{
		`URI SAN \"spiffe://default.trellis.local/default/api\" does not match the granted identity \"spiffe://default.trellis.local/default/web\"`,
	} {
		if !strings.Contains(x.p.stderr(), want) {
			t.Errorf("api-x's log does not contain %s:\n%s", want, x.p.stderr())
		}
	}
	// It retries with back-off and stays refused: two attempts, not ready.
	poll(t, 15*time.Second, "api-x's second refused attempt", func() (bool, string) {
		return strings.Count(x.p.stderr(), "PermissionDenied") >= 2, x.p.stderr()
	})
	if code, body, err := status(x.admin + "/ready"); err != nil || code != 503 {
		t.Errorf("api-x /ready: %d %q %v, want 503", code, body, err)
	}
	if strings.Contains(x.p.stderr(), `msg="certificate installed"`) {
		t.Errorf("api-x installed a certificate:\n%s", x.p.stderr())
	}
	st := dpStatus(t, cp.cfg, "api-x")
	t.Logf("api-x refused: status %+v", st)
	if st.ready() {
		t.Errorf("trellis get dp api-x: %+v, want not Ready", st)
	}
	if row := dpRow(t, cp.cfg, "api-x"); !strings.HasPrefix(row, "default ") {
		t.Errorf("trellis get dp does not list api-x: %q", row)
	} else {
		t.Logf("trellis get dp: %s", row)
	}
	// api-1 keeps serving web, and the proxy without a certificate, which
	// serves nothing, is sent nothing: it is not an endpoint of api.
	if c := count(m.proxies["web-1"].outbound, 100, 4); c["v1"] != 100 {
		t.Errorf("with api-x refused, web-1 answered %v in 100 requests, want all from api-1", c)
	}
	stats := get(t, m.proxies["web-1"].admin+"/stats/prometheus")
	t.Logf("web-1 after 100 requests: %v connect failures, %v retries",
		metricValue(stats, `trellis_cluster_upstream_connect_failures_total{cluster="default/api:80"}`),
		metricValue(stats, `trellis_cluster_upstream_retries_total{cluster="default/api:80"}`))
	xAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	if clusters := get(t, m.proxies["web-1"].admin+"/clusters"); strings.Contains(clusters, "default/api:80::"+xAddr+"::") {
		t.Errorf("api-x (%s), which has no certificate and is not ready, is an endpoint of api in web-1's configuration", xAddr)
	}

	// A revoked token: a new proxy started with it is refused.
	var issued struct{ Token, ID string }
	out := mustCLI(t, cp.cfg, "token", "create", "--mesh", "default", "--service", "web", "-o", "json")
	if err := json.Unmarshal([]byte(out), &issued); err != nil || issued.Token == "" || issued.ID == "" {
		t.Fatalf("trellis token create -o json: %v: %q", err, out)
	}
	mustCLI(t, cp.cfg, "token", "revoke", issued.ID)
	if list := mustCLI(t, cp.cfg, "token", "list", "-o", "json"); !strings.Contains(list, issued.ID) {
		t.Errorf("token list does not show %s:\n%s", issued.ID, list)
	}
	revoked := writeFile(t, m.dir, "revoked.token", issued.Token+"\n")
	ports = freePorts(t, 1)
	dp = writeFile(t, m.dir, "web-r.yaml", dataplaneDoc(instance{name: "web-r", app: "web"}, ports[0], 1, 0))
	r := startProxy(t, cp, dp, revoked)
	r.p.waitStderr("Unauthenticated")
	if !strings.Contains(r.p.stderr(), "token revoked") {
		t.Errorf("web-r's log does not say the token is revoked:\n%s", r.p.stderr())
	}
	if code, body, err := status(r.admin + "/ready"); err != nil || code != 503 {
		t.Errorf("web-r /ready: %d %q %v, want 503", code, body, err)
	}
	if st := dpStatus(t, cp.cfg, "web-r"); st.ready() {
		t.Errorf("trellis get dp web-r: %+v, want not Ready", st)
	}
}

// dpRow is the row of `trellis get dp` for name.
func dpRow(t *testing.T, cfg, name string) string {
	t.Helper()
	out := mustCLI(t, cfg, "get", "dp")
	for l := range strings.Lines(out) {
		if f := strings.Fields(l); len(f) > 1 && f[1] == name {
			return strings.TrimSpace(l)
		}
	}
	return out
}

// TestRotationUnderLoad rotates the mesh CA while web sends a steady load
// to api over one HTTP/2 connection and over new connections: no request
// may fail. The certificates are the shortest a Mesh allows (5 minutes:
// spec.mtls.certificateTTL's minimum; --leaf-ttl only applies to the
// implicit default mesh, which has no mutual TLS), so proxies renew about
// two minutes after their first certificate, and the rotation's
// SignWithNew step waits for that.
func TestRotationUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("a CA rotation waits for every proxy to renew: about 3 minutes")
	}
	const rate, freshEvery = 50, 200 * time.Millisecond
	cp := startControl(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0", "--name", "cp-1")
	resources := "apiVersion: trellis.dev/v1alpha1\nkind: Mesh\nmetadata: {name: default}\n" +
		"spec: {mtls: {mode: STRICT, certificateTTL: 5m}}\n---\n" + securityServices
	began := time.Now()
	m := startSecureMesh(t, cp, resources, nil, webSide, apiSide)
	web := m.proxies["web-1"].outbound
	waitAnswer(t, web, "/", "web to reach api", func(a answer) bool { return a.code == 200 })
	t.Logf("mesh ready in %d ms", time.Since(began).Milliseconds())

	var l load
	ctx, cancel := context.WithCancel(context.Background())
	loadDone := make(chan struct{})
	go func() { l.run(ctx, web, rate, freshEvery); close(loadDone) }()
	t.Cleanup(func() { cancel(); <-loadDone })
	loadStart := time.Now()

	// A few seconds of load on the first certificates, then the rotation,
	// one `trellis ca rotate` step at a time until Stable again.
	waitFor := func(d time.Duration) {
		select {
		case <-time.After(d):
		case <-loadDone:
		}
	}
	waitFor(5 * time.Second)
	type step struct {
		phase string
		at    time.Duration
	}
	var steps []step
	rotStart := time.Now()
	refused, lastWait := 0, ""
	for {
		code, st, errOut := caCommand(t, cp.cfg, "rotate")
		if code == 0 {
			steps = append(steps, step{st.Phase, time.Since(rotStart)})
			t.Logf("ca rotate at %5.1f s: %s → phase %s (waiting: %s)", time.Since(rotStart).Seconds(), st.Step, st.Phase, st.Waiting)
			if st.Phase == "Stable" {
				break
			}
		} else {
			refused++
			if w := strings.TrimSpace(errOut); w != lastWait {
				t.Logf("ca rotate at %5.1f s refused: %s", time.Since(rotStart).Seconds(), w)
				lastWait = w
			}
		}
		if time.Since(rotStart) > 4*time.Minute {
			t.Fatalf("the rotation did not reach Stable within 4 minutes; steps %v; last refusal %s", steps, lastWait)
		}
		waitFor(2 * time.Second)
	}
	rotTook := time.Since(rotStart)
	waitFor(5 * time.Second) // load on the new CA's certificates only
	cancel()
	<-loadDone
	loadTook := time.Since(loadStart)

	var phases []string
	for _, s := range steps {
		phases = append(phases, fmt.Sprintf("%s@%.1fs", s.phase, s.at.Seconds()))
	}
	t.Logf("rotation: %s in %.1f s (%d refused steps while waiting)", strings.Join(phases, " → "), rotTook.Seconds(), refused)
	got := make([]string, len(steps))
	for i, s := range steps {
		got[i] = s.phase
	}
	if want := []string{"AddNew", "SignWithNew", "RemoveOld", "Stable"}; !slices.Equal(got, want) {
		t.Errorf("phases %v, want %v", got, want)
	}
	for _, name := range []string{"web-1", "api-1"} {
		serials := installedSerials(m.proxies[name].p)
		t.Logf("%s: %d certificates installed (serials %v)", name, len(serials), serials)
		if len(serials) < 2 {
			t.Errorf("%s installed %d certificates, want a renewal (at least 2):\n%s", name, len(serials), m.proxies[name].p.stderr())
		}
	}
	upstream := get(t, m.proxies["web-1"].admin+"/stats/prometheus")
	t.Logf("web-1 → api: %v mutual-TLS connections opened, %v open at the end",
		metricValue(upstream, `trellis_cluster_upstream_connections_total{cluster="default/api:80"}`),
		metricValue(upstream, `trellis_cluster_upstream_connections_active{cluster="default/api:80"}`))
	l.mu.Lock()
	failures := slices.Clone(l.failures)
	l.mu.Unlock()
	t.Logf("load: %d requests in %.1f s (%d over the HTTP/2 connection at %d/s, %d on new connections), %d failed; the long-lived client dialled %d connection(s)",
		l.sent.Load(), loadTook.Seconds(), l.sent.Load()-l.fresh.Load(), rate, l.fresh.Load(), l.failed.Load(), l.dials.Load())
	if n := l.failed.Load(); n != 0 {
		t.Errorf("%d of %d requests failed; first: %v", n, l.sent.Load(), failures)
	}
	if d := l.dials.Load(); d != 1 {
		t.Errorf("the long-lived HTTP/2 client opened %d connections, want 1", d)
	}
}
