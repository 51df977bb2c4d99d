package health

import (
	"sync"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"
	"github.com/trellis-mesh/trellis/internal/proxy/cluster/lb"
)

// TestOnPass checks that OnPass is called after every passing check, with
// the host's flag already updated, and never for a failing one.
func TestOnPass(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := lb.NewHost("a:1", "")
		var mu sync.Mutex
		var seen []bool // FailedActiveHealthCheck at each call
		opts := Options{OnPass: func(h *lb.Host) {
			if h != a {
				t.Errorf("OnPass(%v), want host a", h.Address)
			}
			mu.Lock()
			seen = append(seen, h.FailedActiveHealthCheck())
			mu.Unlock()
		}}
		// Checks at 0 (first success heals), 10 fail, 15 fail (unhealthy),
		// 35 success (pending, threshold 2), 37 success (healthy).
		h := start(testConfig(), opts, map[string][]result{
			"a:1": {success, failNetwork, failNetwork, success, success},
		}, a)
		defer h.stop()
		h.at(40)
		mu.Lock()
		defer mu.Unlock()
		if d := cmp.Diff([]bool{false, true, false}, seen); d != "" {
			t.Errorf("host failed at each OnPass (-want +got):\n%s", d)
		}
	})
}
