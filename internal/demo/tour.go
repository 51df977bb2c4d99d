package demo

import (
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"
	"text/tabwriter"
)

// tourInfo is what the tour prints.
type tourInfo struct {
	dir       string      // the data directory
	api, xds  string      // the control plane's http://HOST:PORT and HOST:PORT
	nats      string      // the nats-server's nats://HOST:PORT
	dashboard string      // the web dashboard's URL, token included (dashboardURL)
	entry     string      // the frontend through the load generator's sidecar
	applied   []string    // KIND/NAME of the applied resources
	ins       []*instance // with their ports
	rate      float64     // load, requests per second
	config    string      // how the CLI finds the demo (cliConfig.describe)
	route     string      // the route file to edit
}

// tour prints what runs where and the commands to try.
func tour(w io.Writer, t tourInfo) {
	fmt.Fprintf(w, "Trellis demo: a service mesh on this machine, data in %s (removed at exit).\n\n", t.dir)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  control plane\tAPI %s, xDS %s, bbolt store %s\n", t.api, t.xds, filepath.Join(t.dir, "trellis.db"))
	fmt.Fprintf(tw, "  resources\texamples/demo, applied through the API: %s\n", strings.Join(t.applied, ", "))
	fmt.Fprintf(tw, "  application\tloadgen -> frontend -> catalog\n")
	fmt.Fprintf(tw, "  \t                      -> reviews: 90%% v1, 10%% v2 (HTTPRoute reviews-canary)\n")
	fmt.Fprintf(tw, "  \treviews ~> %s ~> notifier: an event per review read, through the sidecars' HTTP bridge\n", topicViewed)
	fmt.Fprintf(tw, "  messaging\tnats-server %s with JetStream, store %s; Broker %s, Subscription notifier-reviews\n",
		t.nats, filepath.Join(t.dir, "nats"), brokerName)
	for i, in := range t.ins {
		label := ""
		if i == 0 {
			label = "sidecars"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", label, in.name, ports(in))
	}
	fmt.Fprintf(tw, "  \teach one `trellis proxy --control-plane %s --dataplane %s --token-file %s`\n",
		t.xds, filepath.Join(t.dir, "dataplanes", "NAME.yaml"), filepath.Join(t.dir, "tokens", "NAME.token"))
	if t.rate > 0 {
		fmt.Fprintf(tw, "  load\t%g requests/s to the frontend through loadgen-1's sidecar, summed up below\n", t.rate)
	}
	fmt.Fprintf(tw, "  dashboard\t%s\n", t.dashboard)
	fmt.Fprintf(tw, "  \tin a browser on this machine: service graph, golden metrics, messaging, resources, sidecars, live tap\n")
	tw.Flush()

	fmt.Fprintf(w, "\n%s\n", t.config)
	fmt.Fprintln(w, "`trellis` below is `go run ./cmd/trellis` in the repository, or a binary built with `go build ./cmd/trellis`.")
	fmt.Fprintln(w, "\nTry, in another terminal:")
	for _, l := range [][2]string{
		{"curl -s " + t.entry, "the frontend, through the mesh"},
		{"for i in $(seq 50); do curl -s -o /dev/null -w '%header{x-demo-reviews-version}\\n' " + t.entry + "; done | sort | uniq -c", ""},
		{"trellis get svc", ""},
		{"trellis get dp", "every sidecar, connected"},
		{"trellis describe service reviews", ""},
		{"trellis stat", "golden metrics per service (a minute of data)"},
		{"trellis stat service reviews-v2 --from frontend", ""},
		{"trellis edges", "who calls whom, over mutual TLS"},
		{"trellis stat topic", "events per topic: published, delivered, retried"},
		{"trellis tap reviews", "live requests to reviews; Ctrl-C ends it"},
		{"trellis check", "is everything healthy?"},
		{"trellis get httproute reviews-canary -o yaml", ""},
		{"sed 's/weight: 90/weight: 50/; s/weight: 10}/weight: 50}/' " + t.route + " | trellis apply -f -", ""},
		{"", "the canary at 50/50: watch the load lines"},
		{fmt.Sprintf("curl -s 127.0.0.1:%d/stats/prometheus | grep trellis_cluster_upstream_requests_total", frontendAdmin(t.ins)), "the frontend's sidecar"},
	} {
		const width = 46
		switch {
		case l[1] == "":
			fmt.Fprintf(w, "  %s\n", l[0])
		case len(l[0]) > width:
			fmt.Fprintf(w, "  %s\n  %*s  # %s\n", l[0], width, "", l[1])
		default:
			fmt.Fprintf(w, "  %-*s  # %s\n", width, l[0], l[1])
		}
	}
	fmt.Fprintln(w, "\nCtrl-C stops everything.")
	fmt.Fprintln(w)
}

// ports describes an instance's sidecar ports.
func ports(in *instance) string {
	s := fmt.Sprintf("admin :%d", in.admin)
	if in.inbound != 0 {
		s += fmt.Sprintf("  inbound :%d", in.inbound)
	}
	for i, o := range in.outbound {
		sep := ", "
		if i == 0 {
			sep = "  outbound "
		}
		s += fmt.Sprintf("%s%s :%d", sep, o.service, o.port)
	}
	if in.bridge != 0 {
		s += fmt.Sprintf("  bridge :%d", in.bridge)
	}
	if in.app == "reviews" {
		s += "  (" + in.version + ")"
	}
	return s
}

func frontendAdmin(ins []*instance) int {
	for _, in := range ins {
		if in.app == "frontend" {
			return in.admin
		}
	}
	return 0
}

// dashboardURL is the address of the control plane's web dashboard at
// api. The token travels in the fragment, which the browser never sends:
// the page moves it to the tab's session storage (docs/dashboard.md).
func dashboardURL(api, token string) string {
	u := api + "/ui/"
	if token != "" {
		u += "#token=" + url.QueryEscape(token)
	}
	return u
}
