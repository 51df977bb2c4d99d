package metrics

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// expirySeries gathers reg into "kind/mesh/service" → value.
func expirySeries(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "trellis_identity_cert_expiry_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			out[l["kind"]+"/"+l["mesh"]+"/"+l["service"]] = m.GetGauge().GetValue()
		}
	}
	return out
}

func TestIdentityExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		id := NewIdentity(reg)
		id.Set("leaf", "default", "web", time.Now().Add(time.Hour))
		id.Set("root", "default", "", time.Now().Add(-time.Minute))
		time.Sleep(30 * time.Minute) // computed at scrape: the leaf has half an hour left
		got := expirySeries(t, reg)
		if len(got) != 2 || got["leaf/default/web"] != 1800 || got["root/default/"] != -1860 {
			t.Fatalf("series %v, want leaf 1800 and root -1860", got)
		}
		id.Delete("root", "default", "")
		if got := expirySeries(t, reg); len(got) != 1 {
			t.Fatalf("series after Delete %v, want the leaf alone", got)
		}
		var nilID *Identity
		nilID.Set("leaf", "m", "s", time.Now()) // a nil Identity records nothing
	})
}
