package identity

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/trellis-mesh/trellis/internal/identity/ca"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
)

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }

// take returns what was logged since the last take.
func (l *logBuf) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	l.b.Reset()
	return s
}

func gauge(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var k []string
			for _, l := range m.GetLabel() {
				k = append(k, l.GetValue())
			}
			out[strings.Join(k, "/")] = m.GetGauge().GetValue()
		}
	}
	return out
}

func TestWatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		root, err := ca.Generate(spiffeid.RequireTrustDomainFromString("default.trellis.local"), ca.GenerateOptions{Validity: 40 * 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		state := ca.NewState(root)
		var mu sync.Mutex
		certs := func() []Watched {
			mu.Lock()
			defer mu.Unlock()
			return CACertificates("default", state)
		}
		var logs logBuf
		reg := prometheus.NewRegistry()
		ctx, cancel := testContext(t)
		done := make(chan error, 1)
		go func() {
			done <- Watch(ctx, WatchOptions{Certificates: certs, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Gauge: metrics.NewIdentity(reg)})
		}()
		synctest.Wait()
		if got := logs.take(); got != "" {
			t.Fatalf("40 days ahead, Watch logged %q", got)
		}
		if g := gauge(t, reg); g["root/default/"] != (40 * 24 * time.Hour).Seconds() {
			t.Fatalf("gauge %v", g)
		}

		time.Sleep(10 * 24 * time.Hour) // 30 days left
		synctest.Wait()
		if got := logs.take(); strings.Count(got, "level=WARN") != 1 || !strings.Contains(got, "expires soon") || !strings.Contains(got, "kind=root") {
			t.Fatalf("30 days ahead, logged %q, want one warning", got)
		}
		time.Sleep(12 * time.Hour)
		synctest.Wait()
		if got := logs.take(); got != "" {
			t.Fatalf("warned again within a day: %q", got)
		}
		time.Sleep(12 * time.Hour)
		synctest.Wait()
		if got := logs.take(); strings.Count(got, "level=WARN") != 1 {
			t.Fatalf("a day later, logged %q, want one more warning", got)
		}
		time.Sleep(30 * 24 * time.Hour)
		synctest.Wait()
		if got := logs.take(); !strings.Contains(got, "level=ERROR") || !strings.Contains(got, "expired") {
			t.Fatalf("after expiry, logged %q, want an error", got)
		}
		if g := gauge(t, reg); g["root/default/"] >= 0 {
			t.Fatalf("gauge %v, want negative after expiry", g)
		}

		// A rotation replaces the root: the series follows, nothing stale stays.
		next, err := ca.Generate(root.TrustDomain(), ca.GenerateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		forced, err := state.Force(next)
		if err != nil {
			t.Fatal(err)
		}
		removeOld, err := forced.Advance(ca.Progress{})
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		state = removeOld
		mu.Unlock()
		time.Sleep(time.Hour)
		synctest.Wait()
		if g := gauge(t, reg); len(g) != 1 || g["root/default/"] < (9*365*24*time.Hour).Seconds() {
			t.Fatalf("gauge after rotation %v, want the new root alone", g)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func testContext(t *testing.T) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	return ctx, cancel
}

func TestCACertificatesKinds(t *testing.T) {
	root, err := ca.Generate(spiffeid.RequireTrustDomainFromString("a.local"), ca.GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := CACertificates("a", ca.NewState(root))
	if len(got) != 1 || got[0].Kind != KindRoot || got[0].Mesh != "a" || Remaining(got[0].Cert) <= 0 {
		t.Fatalf("CACertificates = %+v", got)
	}
}
