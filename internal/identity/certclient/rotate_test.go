package certclient_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/trellis-mesh/trellis/internal/identity/certclient"
	"github.com/trellis-mesh/trellis/internal/identity/certclient/signtest"
	"github.com/trellis-mesh/trellis/internal/identity/rotate"
)

// syncBuffer is a log sink safe for the rotator's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestRotationBackoffAndRecovery, in a synctest bubble with the real
// Authority in process: a revoked token is refused and retried with
// growing back-off, the proxy logging why; once the token file holds a
// good token the next attempt succeeds; the certificate is then renewed
// at about half its life, with a new key.
func TestRotationBackoffAndRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := signtest.Start(t, signtest.Options{InProcess: true, LeafTTL: time.Hour})
		bad, badID := srv.Token(t, "web")
		srv.Revoke(badID)
		good, _ := srv.Token(t, "web")
		path := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		var logs syncBuffer
		log := slog.New(slog.NewTextHandler(&logs, nil))
		cc, err := certclient.New(certclient.Options{Conn: srv.Conn(), Token: certclient.FileToken(path), Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var installed []time.Time
		rot, err := rotate.New(rotate.Options{Renew: cc.Renew, Logger: log, OnRotate: func(*tls.Certificate) {
			mu.Lock()
			installed = append(installed, time.Now())
			mu.Unlock()
		}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); _ = rot.Run(ctx) }()

		start := time.Now()
		// Back-off waits are drawn from [b/2, b] with b = 1s, 2s, 4s: after
		// 1.5s at least one retry happened, and no more than three.
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		if got := srv.Refused.Load(); got < 2 || got > 3 {
			t.Errorf("after 1.5s: %d refused calls, want 2 or 3 (first try plus back-off retries)", got)
		}
		if rot.Current() != nil {
			t.Fatal("a revoked token got a certificate")
		}
		if want := "identity: token rejected: Unauthenticated: not authenticated: token " + badID + ": token revoked"; !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
		if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
			t.Fatal(err)
		}
		<-rot.Ready()
		first := rot.Current()
		if d := time.Since(start); d > 8*time.Second {
			t.Errorf("first certificate after %v; the back-off should have retried within 8s", d)
		}
		// Renewal at 50% ± 5% of the hour.
		time.Sleep(36 * time.Minute)
		synctest.Wait()
		second := rot.Current()
		if second == first {
			t.Fatal("no renewal within 36 minutes of a one-hour certificate")
		}
		if second.Leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(first.Leaf.PublicKey) {
			t.Error("the renewal reused the key")
		}
		mu.Lock()
		if len(installed) != 2 || installed[1].Sub(installed[0]) < 27*time.Minute {
			t.Errorf("installed at %v; want two, about 30 minutes apart", installed)
		}
		mu.Unlock()
		cancel()
		<-done
	})
}
