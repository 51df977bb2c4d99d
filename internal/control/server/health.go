package server

import (
	"context"
	"net/http"
	"runtime/debug"
	"time"
)

// The health endpoint (token required), what `trellis check` reads:
//
//	GET /api/v1/health   Health; 200 when the store answered and the
//	                     reconciler is ready, 503 (same body) otherwise
//
// healthStoreDeadline bounds the store round trip of one health request.
const healthStoreDeadline = 2 * time.Second

// HealthSource is what the health endpoint asks the control plane.
type HealthSource interface {
	// StoreRevision reads the store's current revision: one round trip
	// to the store (a bbolt read, an etcd request).
	StoreRevision(ctx context.Context) (int64, error)
	// Ready reports whether the reconciler has translated the first full
	// load of the store.
	Ready() bool
	// Replica names this replica, as Dataplane status.controlPlane does.
	Replica() string
	// XDS returns the xDS listener's bound address and whether it serves
	// TLS.
	XDS() (addr string, tls bool)
	// Proxies reports the xDS state of every proxy connected to this
	// replica.
	Proxies() []ProxySync
}

// ProxySync is one connected proxy's xDS state as this replica sees it.
type ProxySync struct {
	// Node is the proxy's node id ("namespace/name" for a sidecar).
	Node string `json:"node"`
	// InSync is true when the proxy has acknowledged the version of every
	// resource type this replica last sent it.
	InSync bool `json:"inSync"`
	// Behind lists the type URLs whose last sent version is not
	// acknowledged yet (or was rejected).
	Behind []string `json:"behind,omitempty"`
	// Types are the versions of each resource type this replica last sent
	// the proxy and the proxy last acknowledged, by type URL order.
	Types []TypeSync `json:"types,omitempty"`
}

// TypeSync is the xDS state of one resource type of a proxy.
type TypeSync struct {
	TypeURL      string `json:"typeURL"`
	SentVersion  string `json:"sentVersion,omitempty"`
	AckedVersion string `json:"ackedVersion,omitempty"`
}

// Health is the answer of GET /api/v1/health.
type Health struct {
	// Version is the control plane binary's module version.
	Version string `json:"version"`
	// Replica names the replica that answered.
	Replica    string           `json:"replica"`
	Store      StoreHealth      `json:"store"`
	Reconciler ReconcilerHealth `json:"reconciler"`
	XDS        XDSHealth        `json:"xds"`
	// Proxies holds the proxies connected to this replica, sorted by
	// node id.
	Proxies []ProxySync `json:"proxies"`
}

// StoreHealth is the outcome of one store round trip.
type StoreHealth struct {
	OK       bool   `json:"ok"`
	Revision int64  `json:"revision,omitempty"`
	Error    string `json:"error,omitempty"`
	// LatencyMillis is how long the round trip took.
	LatencyMillis float64 `json:"latencyMillis"`
}

// ReconcilerHealth says whether the reconciler serves configuration.
type ReconcilerHealth struct {
	Ready bool `json:"ready"`
}

// XDSHealth is where proxies connect.
type XDSHealth struct {
	Address string `json:"address"`
	TLS     bool   `json:"tls"`
}

func (a *api) healthRoutes(mux *http.ServeMux) {
	if a.o.Health == nil {
		return
	}
	mux.Handle("GET /api/v1/health", a.auth(a.health))
}

func (a *api) health(w http.ResponseWriter, r *http.Request) {
	src := a.o.Health
	h := Health{Version: binaryVersion(), Replica: src.Replica(), Proxies: src.Proxies()}
	if h.Proxies == nil {
		h.Proxies = []ProxySync{}
	}
	ctx, cancel := context.WithTimeout(r.Context(), healthStoreDeadline)
	start := time.Now()
	rev, err := src.StoreRevision(ctx)
	cancel()
	h.Store = StoreHealth{OK: err == nil, Revision: rev, LatencyMillis: float64(time.Since(start).Microseconds()) / 1000}
	if err != nil {
		h.Store.Error = err.Error()
	}
	h.Reconciler.Ready = src.Ready()
	h.XDS.Address, h.XDS.TLS = src.XDS()
	code := http.StatusOK
	if !h.Store.OK || !h.Reconciler.Ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, h)
}

func binaryVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
