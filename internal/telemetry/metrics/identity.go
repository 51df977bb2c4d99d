package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Identity exports trellis_identity_cert_expiry_seconds{kind,mesh,service}:
// the seconds until a certificate expires (negative once it has), computed
// at scrape time so the value never goes stale between updates. kind is
// "leaf", "root" or "intermediate"; service is "" for CA certificates. It
// is safe for concurrent use.
type Identity struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	exp  map[identityKey]time.Time
}

type identityKey struct{ kind, mesh, service string }

// NewIdentity registers the identity metrics on reg (a proxy's
// Registry.Prom, or the control plane's registry).
func NewIdentity(reg prometheus.Registerer) *Identity {
	i := &Identity{
		desc: prometheus.NewDesc("trellis_identity_cert_expiry_seconds",
			"Seconds until the certificate expires (negative once expired), by kind (leaf, root, intermediate).",
			[]string{"kind", "mesh", "service"}, nil),
		exp: map[identityKey]time.Time{},
	}
	reg.MustRegister(i)
	return i
}

// Set records the expiry of the certificate of kind for mesh and service,
// replacing the previous one. A nil Identity records nothing.
func (i *Identity) Set(kind, mesh, service string, notAfter time.Time) {
	if i == nil {
		return
	}
	i.mu.Lock()
	i.exp[identityKey{kind, mesh, service}] = notAfter
	i.mu.Unlock()
}

// Delete stops exporting the series of kind, mesh and service.
func (i *Identity) Delete(kind, mesh, service string) {
	if i == nil {
		return
	}
	i.mu.Lock()
	delete(i.exp, identityKey{kind, mesh, service})
	i.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (i *Identity) Describe(ch chan<- *prometheus.Desc) { ch <- i.desc }

// Collect implements prometheus.Collector.
func (i *Identity) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	i.mu.Lock()
	defer i.mu.Unlock()
	for k, t := range i.exp {
		ch <- prometheus.MustNewConstMetric(i.desc, prometheus.GaugeValue, t.Sub(now).Seconds(), k.kind, k.mesh, k.service)
	}
}
