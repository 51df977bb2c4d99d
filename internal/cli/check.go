package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
	"github.com/trellis-mesh/trellis/internal/cli/proxycmd"
	"github.com/trellis-mesh/trellis/internal/cli/render"
	"github.com/trellis-mesh/trellis/internal/control"
	"github.com/trellis-mesh/trellis/internal/control/client"
	"github.com/trellis-mesh/trellis/internal/control/meshca"
	"github.com/trellis-mesh/trellis/internal/identity/ca"
)

// Thresholds of the checks.
const (
	caExpiryWarning = 30 * 24 * time.Hour
	clockSkewLimit  = 5 * time.Second
	dialTimeout     = 3 * time.Second
)

// Check categories, in the order they run.
const (
	catControlPlane = "control plane"
	catDataplanes   = "dataplanes"
	catIdentity     = "identity"
	catResources    = "resources"
	catEnvironment  = "environment"
)

type checkOptions struct {
	clientOptions
	output           string
	pre              bool
	apiAddr, xdsAddr string
	timeout          time.Duration
}

func newCheckCmd() *cobra.Command {
	o := &checkOptions{}
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check that the control plane, its dataplanes and the mesh are healthy",
		Long: "Run categorised checks against the control plane the CLI is configured for:\n" +
			"its API, token, store and xDS port; every Dataplane connected, Ready, on the\n" +
			"latest configuration and rejecting nothing; every mesh CA far from expiry and\n" +
			"no rotation stuck; every resource accepted with its references resolved; and\n" +
			"this machine's clock against the control plane's. A failed check prints a\n" +
			"hint. The exit status is 1 if a check failed (warnings alone give 0).\n\n" +
			"With --pre, before the first `trellis control`: only check that its default\n" +
			"ports (or --api-addr and --xds-addr) are free on this machine.",
		Example: "  trellis check\n  trellis check -o json\n  trellis check --pre",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(o.output, "table", "json"); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			k := &checker{ctx: ctx, now: time.Now}
			if o.pre {
				k.pre(o.apiAddr, o.xdsAddr)
			} else {
				c, err := o.client()
				if err != nil {
					return err
				}
				k.c = c
				k.run()
			}
			rep := render.CheckReport{Checks: k.results, OK: true}
			for _, r := range k.results {
				if r.Status == render.CheckFailed {
					rep.OK = false
				}
			}
			var err error
			if o.output == "json" {
				err = writeJSON(cmd.OutOrStdout(), rep)
			} else {
				err = render.Checks(cmd.OutOrStdout(), rep.Checks)
			}
			if err == nil && !rep.OK {
				err = proxycmd.ExitCode(1)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.output, "output", "o", "table", "table or json")
	f.BoolVar(&o.pre, "pre", false, "before installing: only check that the control plane's ports are free here")
	f.StringVar(&o.apiAddr, "api-addr", control.DefaultAPIAddr, "with --pre: the API address to check")
	f.StringVar(&o.xdsAddr, "xds-addr", control.DefaultXDSAddr, "with --pre: the xDS address to check")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "bound on all the checks together")
	o.bind(f)
	return cmd
}

// checker runs the checks and collects their results.
type checker struct {
	ctx     context.Context
	c       *client.Client
	now     func() time.Time
	results []render.CheckResult

	health    client.HealthAnswer
	healthErr error
	hasHealth bool // the API has the health endpoint
	// lists caches the objects of each kind, as JSON.
	lists map[string][]json.RawMessage
}

// outcome is what one check found; an empty hint takes the check's.
type outcome struct {
	status        render.CheckStatus
	message, hint string
}

func ok(format string, a ...any) outcome {
	return outcome{status: render.CheckOK, message: fmt.Sprintf(format, a...)}
}

func skipped(format string, a ...any) outcome {
	return outcome{status: render.CheckSkipped, message: fmt.Sprintf(format, a...)}
}

// add records a result; it returns false when a fatal check did not pass.
func (k *checker) add(category, name, hint string, fatal bool, o outcome) bool {
	if o.hint == "" {
		o.hint = hint
	}
	if o.status == render.CheckOK || o.status == render.CheckSkipped {
		o.hint = ""
	}
	k.results = append(k.results, render.CheckResult{Category: category, Name: name, Status: o.status, Message: o.message, Hint: o.hint})
	return !fatal || o.status != render.CheckFailed
}

const serverHint = "is `trellis control` running? Point the CLI at it with --server URL, TRELLIS_SERVER, or server: in ~/.trellis/config.yaml (trellis control writes that file in its --data-dir)"

func (k *checker) run() {
	if !k.add(catControlPlane, "API reachable", serverHint, true, k.reachable()) {
		return
	}
	if !k.add(catControlPlane, "token accepted",
		"pass the admin token with --token, TRELLIS_TOKEN or token: in the client config; it is admin.token in the control plane's --data-dir", true, k.tokenAccepted()) {
		return
	}
	if !k.add(catControlPlane, "store healthy",
		"the control plane cannot read its store: see its log; with --store etcd, check that the --etcd-endpoints answer", true, k.storeHealthy()) {
		return
	}
	k.add(catControlPlane, "configuration served",
		"the control plane has not finished its first load of the store; run the check again in a few seconds, and see its log if this persists", false, k.reconcilerReady())
	k.add(catControlPlane, "xDS port accepting connections",
		"proxies cannot reach the xDS endpoint from here: check the control plane's --xds-addr (a loopback address is unreachable from other hosts) and firewalls", false, k.xdsDial())

	dps, err := k.dataplanes()
	dpOutcome := func(f func([]*v1alpha1.Dataplane) outcome) outcome {
		if err != nil {
			return outcome{status: render.CheckFailed, message: err.Error()}
		}
		return f(dps)
	}
	k.add(catDataplanes, "every Dataplane connected and Ready",
		"", false, dpOutcome(notReady))
	k.add(catDataplanes, "no NACKs",
		"the proxy keeps its last good configuration; trellis describe dataplane NAME shows what it rejected: fix the resource behind it", false, dpOutcome(nacks))
	k.add(catDataplanes, "every Dataplane on the latest configuration",
		"a proxy that stays behind is slow, stuck or rejecting its configuration: see the NACK check and trellis describe dataplane NAME", false, dpOutcome(k.inSync))

	k.identityChecks()

	k.add(catResources, "every resource Accepted",
		"trellis describe KIND NAME shows the condition's message; fix the document and apply it again", false, k.conditionCheck(v1alpha1.ConditionAccepted))
	k.add(catResources, "every reference resolved",
		"create what the reference names, or fix the reference (a reference into another mesh never resolves); trellis describe KIND NAME lists them", false, k.conditionCheck(v1alpha1.ConditionResolvedRefs))

	k.add(catEnvironment, "clock in sync with the control plane",
		"certificates and token expiry need agreeing clocks: run NTP (e.g. systemd-timesyncd or chrony) on this machine and the control plane's", false, k.clockSkew())
}

func (k *checker) reachable() outcome {
	k.health, k.healthErr = k.c.Health(k.ctx)
	var apiErr *client.APIError
	if k.healthErr != nil && !errors.As(k.healthErr, &apiErr) {
		return outcome{status: render.CheckFailed, message: k.healthErr.Error()}
	}
	if apiErr != nil {
		return ok("%s answers", k.c.Server())
	}
	return ok("%s answers (version %s, replica %s)", k.c.Server(), k.health.Version, k.health.Replica)
}

func (k *checker) tokenAccepted() outcome {
	var apiErr *client.APIError
	if errors.As(k.healthErr, &apiErr) && apiErr.Status == http.StatusUnauthorized {
		return outcome{status: render.CheckFailed, message: apiErr.Error()}
	}
	if errors.As(k.healthErr, &apiErr) && apiErr.Status == http.StatusNotFound {
		// A control plane without the health endpoint: ask for something
		// else that needs the token.
		if _, err := k.c.List(k.ctx, v1alpha1.KindMesh, ""); err != nil {
			if errors.As(err, &apiErr) && apiErr.Status == http.StatusUnauthorized {
				return outcome{status: render.CheckFailed, message: apiErr.Error()}
			}
			return outcome{status: render.CheckFailed, message: err.Error(), hint: serverHint}
		}
		return ok("the API accepts this CLI's token")
	}
	if k.healthErr != nil {
		return outcome{status: render.CheckFailed, message: k.healthErr.Error(), hint: serverHint}
	}
	k.hasHealth = true
	return ok("the API accepts this CLI's token")
}

func (k *checker) storeHealthy() outcome {
	if !k.hasHealth {
		return skipped("this control plane has no health endpoint (GET /api/v1/health; an older version?)")
	}
	s := k.health.Store
	if !s.OK {
		return outcome{status: render.CheckFailed, message: fmt.Sprintf("reading the store's revision failed after %.1fms: %s", s.LatencyMillis, s.Error)}
	}
	return ok("revision %d read in %.1fms", s.Revision, s.LatencyMillis)
}

func (k *checker) reconcilerReady() outcome {
	if !k.hasHealth {
		return skipped("no health endpoint")
	}
	if !k.health.Reconciler.Ready {
		return outcome{status: render.CheckFailed, message: "the reconciler has not translated the store yet: proxies get no configuration"}
	}
	return ok("the reconciler translated the store and serves proxies")
}

// xdsDial connects to the xDS address the API reports; a wildcard host
// (0.0.0.0, ::) is replaced by the API's host.
func (k *checker) xdsDial() outcome {
	if !k.hasHealth {
		return skipped("no health endpoint to tell the xDS address")
	}
	addr := k.health.XDS.Address
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return outcome{status: render.CheckFailed, message: fmt.Sprintf("the control plane reports xDS address %q: %v", addr, err)}
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if u, err := url.Parse(k.c.Server()); err == nil {
			addr = net.JoinHostPort(u.Hostname(), port)
		}
	}
	d := net.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(k.ctx, "tcp", addr)
	if err != nil {
		return outcome{status: render.CheckFailed, message: err.Error()}
	}
	conn.Close()
	tls := "plaintext"
	if k.health.XDS.TLS {
		tls = "TLS"
	}
	return ok("%s accepts connections (%s)", addr, tls)
}

// list returns the objects of kind as JSON, remembering the first failure.
func (k *checker) list(kind string) ([]json.RawMessage, error) {
	if k.lists == nil {
		k.lists = map[string][]json.RawMessage{}
	}
	if items, ok := k.lists[kind]; ok {
		return items, nil
	}
	items, err := k.c.List(k.ctx, kind, "")
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", kind, err)
	}
	k.lists[kind] = items
	return items, nil
}

func (k *checker) dataplanes() ([]*v1alpha1.Dataplane, error) {
	items, err := k.list(v1alpha1.KindDataplane)
	if err != nil {
		return nil, err
	}
	var out []*v1alpha1.Dataplane
	for _, raw := range items {
		obj, err := decodeRaw(raw)
		if err != nil {
			return nil, err
		}
		if dp, ok := obj.(*v1alpha1.Dataplane); ok {
			out = append(out, dp)
		}
	}
	return out, nil
}

func dpName(dp *v1alpha1.Dataplane) string { return dp.Namespace + "/" + dp.Name }

func notReady(dps []*v1alpha1.Dataplane) outcome {
	if len(dps) == 0 {
		return ok("no Dataplanes registered")
	}
	var bad []string
	away, configuring := false, false
	for _, dp := range dps {
		c := findCondition(dp.Status.Conditions, control.ConditionReady)
		switch {
		case c == nil:
			away = true
			bad = append(bad, fmt.Sprintf("%s: never connected (no Ready condition)", dpName(dp)))
		case c.Status != metav1.ConditionTrue:
			configuring = configuring || c.Reason == "Configuring"
			away = away || c.Reason != "Configuring"
			bad = append(bad, fmt.Sprintf("%s: Ready=%s (%s): %s", dpName(dp), c.Status, c.Reason, c.Message))
		case !dp.Status.Connected:
			away = true
			bad = append(bad, fmt.Sprintf("%s: not connected (Ready until its grace period ends)", dpName(dp)))
		}
	}
	if len(bad) > 0 {
		var hints []string
		if away {
			hints = append(hints, "a proxy that is not connected: start its sidecar: trellis proxy --control-plane XDS_ADDRESS with a token of its mesh")
		}
		if configuring {
			hints = append(hints, "a Configuring proxy has not accepted its listeners: see the NACK check (an mTLS sidecar also waits for its certificate)")
		}
		hints = append(hints, "trellis describe dataplane NAME shows its status")
		return outcome{status: render.CheckFailed, message: fmt.Sprintf("%d of %d not ready:\n%s", len(bad), len(dps), strings.Join(bad, "\n")),
			hint: strings.Join(hints, "\n")}
	}
	return ok("%d of %d", len(dps), len(dps))
}

func nacks(dps []*v1alpha1.Dataplane) outcome {
	var bad []string
	for _, dp := range dps {
		n := len(bad)
		for _, x := range dp.Status.XDS {
			if x.NackError != "" {
				bad = append(bad, fmt.Sprintf("%s rejected %s version %s: %s", dpName(dp), x.TypeURL, x.NackVersion, x.NackError))
			}
		}
		if c := findCondition(dp.Status.Conditions, control.ConditionXDSAccepted); n == len(bad) && c != nil && c.Status == metav1.ConditionFalse {
			bad = append(bad, fmt.Sprintf("%s: %s=False (%s): %s", dpName(dp), c.Type, c.Reason, c.Message))
		}
	}
	if len(bad) > 0 {
		return outcome{status: render.CheckFailed, message: strings.Join(bad, "\n")}
	}
	return ok("no proxy rejects its configuration")
}

// inSync compares the connected Dataplanes with what the answering
// replica knows of its proxies' acknowledgements; proxies of other
// replicas are not known here.
func (k *checker) inSync(dps []*v1alpha1.Dataplane) outcome {
	if !k.hasHealth {
		return skipped("this control plane does not report its proxies' acknowledgements (no health endpoint)")
	}
	sync := map[string][]string{}
	for _, p := range k.health.Proxies {
		sync[p.Node] = p.Behind
	}
	var bad []string
	checked, elsewhere := 0, 0
	for _, dp := range dps {
		if !dp.Status.Connected {
			continue
		}
		if dp.Status.ControlPlane != k.health.Replica {
			elsewhere++
			continue
		}
		behind, known := sync[dpName(dp)]
		checked++
		switch {
		case !known:
			bad = append(bad, fmt.Sprintf("%s: its status says connected to %s, which has no stream from it", dpName(dp), k.health.Replica))
		case len(behind) > 0:
			bad = append(bad, fmt.Sprintf("%s has not acknowledged the latest %s", dpName(dp), strings.Join(behind, ", ")))
		}
	}
	note := ""
	if elsewhere > 0 {
		note = fmt.Sprintf("; %d connected to other replicas not checked (run trellis check --server against them)", elsewhere)
	}
	if len(bad) > 0 {
		return outcome{status: render.CheckWarning, message: fmt.Sprintf("%d of %d behind%s:\n%s", len(bad), checked, note, strings.Join(bad, "\n"))}
	}
	switch {
	case checked == 0 && elsewhere > 0:
		return skipped("no connected Dataplane uses %s%s", k.health.Replica, note)
	case checked == 0:
		return ok("no Dataplane is connected")
	}
	return ok("%d of %d connected to %s acknowledged everything sent%s", checked, checked, k.health.Replica, note)
}

func findCondition(conds []metav1.Condition, typ string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}

// identityChecks checks the CA of every mesh with mutual TLS, and of the
// implicit default mesh when it has one.
func (k *checker) identityChecks() {
	const expiryHint = "start a CA rotation before it expires: trellis ca rotate --mesh %s (docs/security.md, CA rotation)"
	const rotationHint = "trellis ca status --mesh %s shows its progress; once nothing is waited for, trellis ca rotate --mesh %s takes the next step (--abort cancels one in AddNew)"
	items, err := k.list(v1alpha1.KindMesh)
	if err != nil {
		k.add(catIdentity, "mesh CAs", "", false, outcome{status: render.CheckFailed, message: err.Error(), hint: serverHint})
		return
	}
	type mesh struct {
		name     string
		explicit bool
	}
	var meshes []mesh
	hasDefault := false
	for _, raw := range items {
		obj, err := decodeRaw(raw)
		if err != nil {
			k.add(catIdentity, "mesh CAs", "", false, outcome{status: render.CheckFailed, message: err.Error()})
			return
		}
		m, _ := obj.(*v1alpha1.Mesh)
		if m == nil {
			continue
		}
		hasDefault = hasDefault || m.Name == v1alpha1.DefaultMesh
		if v1alpha1.MTLSModeOf(m) != v1alpha1.MTLSDisabled {
			meshes = append(meshes, mesh{m.Name, true})
		}
	}
	if !hasDefault {
		meshes = append(meshes, mesh{v1alpha1.DefaultMesh, false})
	}
	sort.Slice(meshes, func(i, j int) bool { return meshes[i].name < meshes[j].name })
	checked := 0
	for _, m := range meshes {
		st, err := k.c.CAStatus(k.ctx, m.name)
		var apiErr *client.APIError
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
			if m.explicit {
				checked++
				k.add(catIdentity, "mesh "+m.name+": CA far from expiry", "", false,
					ok("no CA yet: it is made when the mesh's first proxy or token needs it"))
			}
			continue
		}
		checked++
		if err != nil {
			k.add(catIdentity, "mesh "+m.name+": CA far from expiry", "", false, outcome{status: render.CheckFailed, message: err.Error()})
			continue
		}
		k.add(catIdentity, "mesh "+m.name+": CA far from expiry", fmt.Sprintf(expiryHint, m.name), false, k.caExpiry(st))
		k.add(catIdentity, "mesh "+m.name+": no CA rotation stuck", fmt.Sprintf(rotationHint, m.name, m.name), false, rotation(st))
	}
	if checked == 0 {
		k.add(catIdentity, "mesh CAs", "", false, ok("no mesh uses mutual TLS"))
	}
}

func (k *checker) caExpiry(st meshca.CAStatus) outcome {
	now := k.now()
	worst := outcome{status: render.CheckOK}
	var parts []string
	for _, c := range []struct {
		which string
		info  *meshca.CAInfo
	}{{"current", st.Current}, {"next", st.Next}} {
		if c.info == nil {
			continue
		}
		left := c.info.NotAfter.Sub(now)
		at := c.info.NotAfter.UTC().Format(time.RFC3339)
		switch {
		case left <= 0:
			worst.status = render.CheckFailed
			parts = append(parts, fmt.Sprintf("%s CA %q EXPIRED at %s", c.which, c.info.Subject, at))
		case left < caExpiryWarning:
			if worst.status != render.CheckFailed {
				worst.status = render.CheckWarning
			}
			if c.which == "next" {
				worst.hint = fmt.Sprintf("the rotation's new CA is short-lived: in AddNew, trellis ca rotate --mesh %s --abort, then begin again with a longer-lived CA", st.Mesh)
			}
			parts = append(parts, fmt.Sprintf("%s CA %q expires in %s, at %s", c.which, c.info.Subject, days(left), at))
		default:
			parts = append(parts, fmt.Sprintf("%s CA valid for %s, until %s", c.which, days(left), at))
		}
	}
	if len(parts) == 0 {
		return skipped("the CA status names no certificate")
	}
	worst.message = strings.Join(parts, "; ")
	return worst
}

// days prints a duration in whole days, or hours under two days.
func days(d time.Duration) string {
	if d < 48*time.Hour {
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func rotation(st meshca.CAStatus) outcome {
	if st.Phase == ca.PhaseStable || st.Phase == "" {
		return ok("no rotation in progress")
	}
	msg := fmt.Sprintf("rotation in phase %s, waiting for %s (%d proxies behind", st.Phase, st.Waiting, st.Progress.ProxiesBehind)
	if st.Phase == ca.PhaseSignWithNew {
		msg += fmt.Sprintf(", %d leaves from the old CA", st.Progress.LeavesFromOld)
	}
	return outcome{status: render.CheckWarning, message: msg + ", as the answering replica sees them)"}
}

// conditionCheck lists every object of every kind whose condition typ is
// present and not True.
func (k *checker) conditionCheck(typ string) outcome {
	var bad []string
	total := 0
	for _, info := range v1alpha1.Kinds() {
		items, err := k.list(info.Kind)
		if err != nil {
			return outcome{status: render.CheckFailed, message: err.Error(), hint: serverHint}
		}
		for _, raw := range items {
			problems, err := render.ConditionProblems(raw, typ)
			if err != nil {
				return outcome{status: render.CheckFailed, message: fmt.Sprintf("a %s document: %v", info.Kind, err)}
			}
			total++
			bad = append(bad, problems...)
		}
	}
	if len(bad) > 0 {
		return outcome{status: render.CheckFailed, message: strings.Join(bad, "\n")}
	}
	return ok("%d resources", total)
}

// clockSkew compares the answer's Date (whole seconds) with the middle
// of the exchange.
func (k *checker) clockSkew() outcome {
	h := k.health
	if h.Date.IsZero() {
		return skipped("the control plane's answer had no Date header")
	}
	local := h.Sent.Add(h.Received.Sub(h.Sent) / 2)
	skew := h.Date.Add(500 * time.Millisecond).Sub(local)
	abs := skew
	if abs < 0 {
		abs = -abs
	}
	msg := fmt.Sprintf("the control plane's clock is %s %s this machine's", abs.Round(time.Second), map[bool]string{true: "ahead of", false: "behind"}[skew >= 0])
	if abs > clockSkewLimit {
		return outcome{status: render.CheckWarning, message: msg + fmt.Sprintf(" (more than %s)", clockSkewLimit)}
	}
	return ok("%s (within %s)", msg, clockSkewLimit)
}

// pre checks that the control plane's listen addresses are free here.
func (k *checker) pre(apiAddr, xdsAddr string) {
	for _, p := range []struct{ what, addr, flag string }{{"API", apiAddr, "--api-addr"}, {"xDS", xdsAddr, "--xds-addr"}} {
		hint := fmt.Sprintf("stop what listens there (a running trellis control?), or run trellis control %s HOST:PORT (and check with --pre %s)", p.flag, p.flag)
		ln, err := net.Listen("tcp", p.addr)
		o := ok("nothing listens on %s", p.addr)
		if err != nil {
			o = outcome{status: render.CheckFailed, message: err.Error()}
		} else {
			ln.Close()
		}
		k.add(catEnvironment, p.what+" port free", hint, false, o)
	}
}
