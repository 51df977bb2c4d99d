// Package admin serves the proxy's admin interface with Envoy-compatible
// paths: /ready, /stats/prometheus, /config_dump, /clusters,
// /healthcheck/fail, /healthcheck/ok and /server_info.
//
// The admin listener is for operators and local tooling only: it can fail
// health checks and shows the whole configuration, so bind it to loopback.
package admin

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster"
	"github.com/trellis-mesh/trellis/internal/proxy/cluster/lb"
)

// Source is the proxy as the admin interface sees it.
type Source interface {
	// State returns Envoy's server state: "LIVE", "DRAINING" or
	// "PRE_INITIALIZING".
	State() string
	// ConfigDump returns the active configuration as Envoy's
	// admin.v3.ConfigDump JSON.
	ConfigDump() ([]byte, error)
	// Clusters returns the active clusters.
	Clusters() []*cluster.Cluster
	// SetHealthCheckFailed fails (true) or restores (false) health checks.
	SetHealthCheckFailed(bool)
}

// Handler returns the admin HTTP handler.
func Handler(src Source, reg *prometheus.Registry, started time.Time, version string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		st := src.State()
		if st != "LIVE" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintln(w, st)
	})
	mux.Handle("GET /stats/prometheus", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /config_dump", func(w http.ResponseWriter, _ *http.Request) {
		b, err := src.ConfigDump()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
	mux.HandleFunc("GET /clusters", func(w http.ResponseWriter, r *http.Request) {
		writeClusters(w, src.Clusters(), r.URL.Query().Get("format") == "json")
	})
	mux.HandleFunc("POST /healthcheck/fail", func(w http.ResponseWriter, _ *http.Request) {
		src.SetHealthCheckFailed(true)
		fmt.Fprintln(w, "OK")
	})
	mux.HandleFunc("POST /healthcheck/ok", func(w http.ResponseWriter, _ *http.Request) {
		src.SetHealthCheckFailed(false)
		fmt.Fprintln(w, "OK")
	})
	mux.HandleFunc("GET /server_info", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"state": src.State(), "version": version,
			"uptime_current_epoch": fmt.Sprintf("%ds", int(time.Since(started).Seconds())),
		})
	})
	// Go's profiler, Trellis' answer to Envoy's /cpuprofiler and /heapprofiler.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "trellis proxy admin\n  /ready\n  /stats/prometheus\n  /config_dump\n  /clusters[?format=json]\n"+
			"  /server_info\n  /debug/pprof/ (Go profiles)\n  POST /healthcheck/fail\n  POST /healthcheck/ok\n")
	})
	return mux
}

type hostJSON struct {
	Address  string `json:"address"`
	Hostname string `json:"hostname,omitempty"`
	Weight   uint32 `json:"weight"`
	Priority uint32 `json:"priority"`
	Locality string `json:"locality,omitempty"`
	Active   int64  `json:"rq_active"`
	Health   string `json:"health_flags"`
}

type clusterJSON struct {
	Name  string     `json:"name"`
	Type  string     `json:"type"`
	Hosts []hostJSON `json:"host_statuses"`
}

// writeClusters renders clusters in Envoy's /clusters text form
// (cluster::host::stat::value), or as JSON.
func writeClusters(w http.ResponseWriter, cs []*cluster.Cluster, asJSON bool) {
	var out []clusterJSON
	for _, c := range cs {
		cj := clusterJSON{Name: c.Name, Type: c.Kind.String()}
		for _, h := range c.Hosts() {
			cj.Hosts = append(cj.Hosts, hostJSON{
				Address: h.Host.Address, Hostname: h.Host.Hostname, Weight: h.Weight, Priority: h.Priority,
				Locality: h.Locality, Active: h.Host.Active(), Health: healthFlags(h.Host),
			})
		}
		out = append(out, cj)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if asJSON {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"cluster_statuses": out})
		return
	}
	var b strings.Builder
	for _, c := range out {
		fmt.Fprintf(&b, "%s::type::%s\n", c.Name, c.Type)
		for _, h := range c.Hosts {
			p := c.Name + "::" + h.Address
			fmt.Fprintf(&b, "%s::rq_active::%d\n%s::weight::%d\n%s::priority::%d\n%s::health_flags::%s\n",
				p, h.Active, p, h.Weight, p, h.Priority, p, h.Health)
			if h.Hostname != "" {
				fmt.Fprintf(&b, "%s::hostname::%s\n", p, h.Hostname)
			}
			if h.Locality != "" {
				fmt.Fprintf(&b, "%s::locality::%s\n", p, h.Locality)
			}
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = fmt.Fprint(w, b.String())
}

// Listen binds the admin address.
func Listen(addr string) (net.Listener, error) {
	return net.Listen("tcp", addr)
}

// healthFlags renders a host's health as Envoy's /clusters does.
func healthFlags(h *lb.Host) string {
	var flags []string
	if h.FailedActiveHealthCheck() {
		flags = append(flags, "/failed_active_hc")
	}
	if h.Ejected() {
		flags = append(flags, "/failed_outlier_check")
	}
	if len(flags) == 0 {
		return "healthy"
	}
	return strings.Join(flags, "")
}
