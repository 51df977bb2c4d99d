package proxy_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

const lbConfig = `
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
` + webListener + `          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: "/"}
                route:
                  cluster: backends
                  hash_policy: [{header: {header_name: x-user}}]
          ` + routerFilter + `
  clusters:
  - name: backends
    lb_policy: {{.Policy}}
    load_assignment:
      cluster_name: backends
      endpoints:
      - lb_endpoints:
{{- range $i, $a := .Addrs}}
        - endpoint: {address: {{addr $a}}}
          load_balancing_weight: {{index $.Weights $i}}
{{- end}}
      - priority: 1
        lb_endpoints: [{endpoint: {address: {{addr .Standby}}}}]
`

type lbData struct {
	Policy  string
	Addrs   []string
	Weights []int
	Standby string
}

// TestLoadBalancing runs every lb_policy through a real proxy in front of
// four echo instances (plus a priority-1 standby that must get nothing).
func TestLoadBalancing(t *testing.T) {
	var addrs []string
	for i := range 4 {
		addrs = append(addrs, startEcho(t, fmt.Sprintf("e%d", i)).Addr())
	}
	standby := startEcho(t, "standby").Addr()
	tests := []struct {
		policy  string
		weights []int
		hashing bool
	}{
		{policy: "ROUND_ROBIN", weights: []int{1, 1, 1, 1}},
		{policy: "ROUND_ROBIN", weights: []int{1, 2, 3, 4}},
		{policy: "LEAST_REQUEST", weights: []int{1, 1, 1, 1}},
		{policy: "LEAST_REQUEST", weights: []int{1, 2, 3, 4}},
		{policy: "RANDOM", weights: []int{1, 1, 1, 1}},
		{policy: "RING_HASH", weights: []int{1, 1, 1, 1}, hashing: true},
		{policy: "MAGLEV", weights: []int{1, 1, 1, 1}, hashing: true},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s%v", tc.policy, tc.weights), func(t *testing.T) {
			p := startProxy(t, lbConfig, lbData{Policy: tc.policy, Addrs: addrs, Weights: tc.weights, Standby: standby})
			base := "http://" + p.ListenerAddrs()["web"] + "/"
			c := &http.Client{}
			defer c.CloseIdleConnections()
			counts := map[string]int{}
			const n = 1000
			for i := range n {
				var hdr map[string]string
				if tc.hashing {
					hdr = map[string]string{"X-User": fmt.Sprint("user-", i)}
				}
				_, er, _ := get(t, c, base, hdr)
				counts[er.Name]++
			}
			if counts["standby"] != 0 {
				t.Fatalf("priority 1 got traffic while priority 0 has hosts: %v", counts)
			}
			total := 0
			for _, w := range tc.weights {
				total += w
			}
			for i, w := range tc.weights {
				want := float64(n*w) / float64(total)
				got := float64(counts[fmt.Sprintf("e%d", i)])
				// Generous bounds: the lb package's conformance suite checks
				// distributions tightly; this checks the wiring.
				if got < want*0.6 || got > want*1.4 {
					t.Errorf("e%d: %v requests, want about %.0f (all: %v)", i, got, want, counts)
				}
			}
			if tc.hashing {
				for _, user := range []string{"ada", "grace", "linus"} {
					seen := map[string]bool{}
					for range 10 {
						_, er, _ := get(t, c, base, map[string]string{"X-User": user})
						seen[er.Name] = true
					}
					if len(seen) != 1 {
						t.Errorf("user %s spread over %v", user, seen)
					}
				}
			}
		})
	}
}

// TestPoolReuse checks that the proxy keeps upstream connections: many
// sequential requests use few connections.
func TestPoolReuse(t *testing.T) {
	e := startEcho(t, "e")
	p := startProxy(t, lbConfig, lbData{Policy: "ROUND_ROBIN", Addrs: []string{e.Addr()}, Weights: []int{1}, Standby: e.Addr()})
	base := "http://" + p.ListenerAddrs()["web"] + "/"
	for range 200 {
		get(t, http.DefaultClient, base, nil)
	}
	metrics := scrape(t, p.AdminAddr())
	if v := metricValue(metrics, `trellis_cluster_upstream_connections_total{cluster="backends"}`); v < 1 || v > 2 {
		t.Fatalf("upstream connections opened: %v, want 1 (pooled)", v)
	}
}

func metricValue(text, series string) float64 {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, series+" ") {
			var v float64
			fmt.Sscan(strings.TrimPrefix(l, series+" "), &v)
			return v
		}
	}
	return -1
}

// TestPeakEWMA: with the peak-EWMA balancer a slow host gets little
// traffic once its latency is known.
func TestPeakEWMA(t *testing.T) {
	slow := newUpstream(t, "slow", func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(30 * time.Millisecond) // the upstream is slow; nothing waits on this
	})
	fast := newUpstream(t, "fast", answer(200))
	p := startProxy(t, `
`+webListener+`          route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: app}}]}]}
          `+routerFilter+`
  clusters:
  - name: app
    load_balancing_policy:
      policies:
      - typed_extension_config:
          name: trellis.lb.peak_ewma
          typed_config:
            "@type": type.googleapis.com/xds.type.v3.TypedStruct
            type_url: type.googleapis.com/trellis.lb.v1.PeakEwma
    load_assignment:
      cluster_name: app
      endpoints: [{lb_endpoints: [{endpoint: {address: {{addr .Slow}}}}, {endpoint: {address: {{addr .Fast}}}}]}]
`, map[string]string{"Slow": slow.addr(), "Fast": fast.addr()})
	for range 100 {
		get(t, http.DefaultClient, "http://"+p.ListenerAddrs()["web"]+"/", nil)
	}
	if s := slow.calls.Load(); s > 20 {
		t.Fatalf("the slow host got %d of 100 requests", s)
	}
}
