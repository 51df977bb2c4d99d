package telemetry

import (
	"cmp"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// famCertExpiry is the proxy's certificate expiry gauge (docs/metrics.md).
const famCertExpiry = "trellis_identity_cert_expiry_seconds"

// ProxyState is what the aggregator last heard from one proxy.
type ProxyState struct {
	// Node is the proxy's xDS node id (namespace/name of its Dataplane).
	Node string `json:"node"`
	// LastPush is when its metrics last arrived.
	LastPush time.Time `json:"lastPush"`
	// LeafExpiry is when its leaf certificate expires, as its last push
	// that exported trellis_identity_cert_expiry_seconds{kind="leaf"}
	// said; null for a proxy without a mesh identity.
	LeafExpiry *time.Time `json:"leafExpiry,omitempty"`
}

// Proxies lists the proxies that pushed metrics within the retention,
// sorted by node id.
func (a *Aggregator) Proxies() []ProxyState {
	a.nodeMu.Lock()
	ids := make([]string, 0, len(a.nodes))
	nodes := make([]*nodeState, 0, len(a.nodes))
	for id, ns := range a.nodes {
		ids = append(ids, id)
		nodes = append(nodes, ns)
	}
	a.nodeMu.Unlock()
	// Each node's lock is taken with the aggregator's locks released:
	// Ingest holds a node's lock while it takes the series lock.
	out := make([]ProxyState, 0, len(nodes))
	for i, ns := range nodes {
		ns.mu.Lock()
		p := ProxyState{Node: ids[i], LastPush: ns.last}
		if !ns.leaf.IsZero() {
			t := ns.leaf.UTC()
			p.LeafExpiry = &t
		}
		ns.mu.Unlock()
		out = append(out, p)
	}
	slices.SortFunc(out, func(x, y ProxyState) int { return cmp.Compare(x.Node, y.Node) })
	return out
}

// leafExpiry returns the seconds until the pushing proxy's leaf
// certificate expires, if the push says.
func leafExpiry(fams []*dto.MetricFamily) (float64, bool) {
	for _, f := range fams {
		if f.GetName() != famCertExpiry {
			continue
		}
		for _, m := range f.GetMetric() {
			if label(m, "kind") == "leaf" {
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}
