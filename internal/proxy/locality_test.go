package proxy_test

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

const localityConfig = `
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
` + webListener + `          route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: app}}]}]}
          ` + routerFilter + `
  clusters:
  - name: app
    lb_policy: {{.Policy}}
    common_lb_config: {locality_weighted_lb_config: {}}
    health_checks:
    - {timeout: 1s, interval: 0.05s, unhealthy_threshold: 1, healthy_threshold: 1, http_health_check: {path: /healthz}}
    load_assignment:
      cluster_name: app
      endpoints:
{{- range .Localities}}
      - locality: {region: r, zone: {{.Zone}}}
        load_balancing_weight: {{.Weight}}
        lb_endpoints:
{{- range .Addrs}}
        - endpoint: {address: {{addr .}}}
{{- end}}
{{- end}}
`

type localityData struct {
	Policy     string
	Localities []localityEntry
}

type localityEntry struct {
	Zone   string
	Weight int
	Addrs  []string
}

// TestLocalityWeightedLB runs locality-weighted load balancing over real
// upstreams in three zones weighted 1:2:1. The traffic follows the
// weights; when one host of the heavy zone fails its health check the zone's
// effective weight drops to 2 × min(1, 1.4 × 1/2) = 1.4, and when both
// fail its traffic goes to the other zones in proportion to their weights.
func TestLocalityWeightedLB(t *testing.T) {
	for _, policy := range []string{"ROUND_ROBIN", "LEAST_REQUEST"} {
		t.Run(policy, func(t *testing.T) {
			sick := map[string]*atomic.Bool{}
			data := localityData{Policy: policy}
			for z, w := range []int{1, 2, 1} {
				e := localityEntry{Zone: fmt.Sprintf("z%d", z), Weight: w}
				for i := range 2 {
					name := fmt.Sprintf("z%d-%d", z, i)
					var down atomic.Bool
					sick[name] = &down
					u := newUpstream(t, name, func(w http.ResponseWriter, r *http.Request) {
						if r.URL.Path == "/healthz" && down.Load() {
							w.WriteHeader(503)
						}
					})
					e.Addrs = append(e.Addrs, u.addr())
				}
				data.Localities = append(data.Localities, e)
			}
			p := startProxy(t, localityConfig, data)
			url := "http://" + p.ListenerAddrs()["web"] + "/"
			waitHealth := func(want map[string]string) {
				t.Helper()
				for _, l := range data.Localities {
					for i, a := range l.Addrs {
						flag := "healthy"
						if f, ok := want[fmt.Sprintf("%s-%d", l.Zone, i)]; ok {
							flag = f
						}
						waitHost(t, p.AdminAddr(), "app::"+a+"::health_flags::"+flag)
					}
				}
			}
			measure := func(n int) map[string]float64 {
				got := map[string]float64{}
				for range n {
					resp, _, _ := get(t, http.DefaultClient, url, nil)
					zone, _, _ := strings.Cut(resp.Header.Get("X-Upstream"), "-")
					got[zone] += 1 / float64(n)
				}
				return got
			}
			check := func(phase string, got, want map[string]float64) {
				t.Helper()
				for z, w := range want {
					if math.Abs(got[z]-w) > 0.05 {
						t.Errorf("%s: zone %s got %.3f of the traffic, want %.3f (all: %v)", phase, z, got[z], w, got)
					}
				}
			}

			waitHealth(nil)
			check("all healthy", measure(1200), map[string]float64{"z0": 0.25, "z1": 0.5, "z2": 0.25})

			sick["z1-0"].Store(true)
			waitHealth(map[string]string{"z1-0": "/failed_active_hc"})
			check("one z1 host down", measure(1200), map[string]float64{"z0": 1 / 3.4, "z1": 1.4 / 3.4, "z2": 1 / 3.4})

			sick["z1-1"].Store(true)
			waitHealth(map[string]string{"z1-0": "/failed_active_hc", "z1-1": "/failed_active_hc"})
			check("z1 down", measure(1200), map[string]float64{"z0": 0.5, "z1": 0, "z2": 0.5})

			sick["z1-0"].Store(false)
			sick["z1-1"].Store(false)
			waitHealth(nil)
			check("recovered", measure(1200), map[string]float64{"z0": 0.25, "z1": 0.5, "z2": 0.25})
		})
	}
}

// TestLocalityWeightedRejections: configurations Envoy would balance
// differently are refused with the field named.
func TestLocalityWeightedRejections(t *testing.T) {
	u := newUpstream(t, "u", answer(200))
	for _, tc := range []struct{ name, policy, want string }{
		{"ring hash", "RING_HASH", "common_lb_config.locality_weighted_lb_config: not supported with lb_policy RING_HASH"},
		{"maglev", "MAGLEV", "common_lb_config.locality_weighted_lb_config: not supported with lb_policy MAGLEV"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := localityData{Policy: tc.policy, Localities: []localityEntry{{Zone: "a", Weight: 1, Addrs: []string{u.addr()}}}}
			p := startProxy(t, lbOnlyConfig, localityData{Policy: "ROUND_ROBIN"})
			err := apply(t, p, localityConfig, data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Apply: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	t.Run("duplicate locality", func(t *testing.T) {
		data := localityData{Policy: "ROUND_ROBIN", Localities: []localityEntry{
			{Zone: "a", Weight: 1, Addrs: []string{u.addr()}}, {Zone: "a", Weight: 2, Addrs: []string{u.addr()}}}}
		p := startProxy(t, lbOnlyConfig, localityData{Policy: "ROUND_ROBIN"})
		err := apply(t, p, localityConfig, data)
		want := `load_assignment.endpoints[1].locality: "r/a/" at priority 0 is already endpoints[0]`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Apply: %v, want an error containing %q", err, want)
		}
	})
}

// lbOnlyConfig is a proxy with an admin listener and no cluster, to which
// the rejection tests apply bad configurations.
const lbOnlyConfig = `
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources: {}
`
