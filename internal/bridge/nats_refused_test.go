package bridge

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// TestNATSPublishRefused: a publish the server refuses with a permissions
// violation (as nats-server does for its users' permissions, and the
// mesh's NATS filter for an AccessPolicy at the server's sidecar) answers
// 502 naming the refusal, at once, with JetStream (which would otherwise
// wait for its acknowledgement until the publish timeout, 504) and with
// core NATS (which would otherwise answer 200: the flush succeeds); the
// next publish to an allowed subject is accepted.
func TestNATSPublishRefused(t *testing.T) {
	for _, js := range []bool{true, false} {
		t.Run(fmt.Sprintf("jetStream=%v", js), func(t *testing.T) {
			url := startNATSWithUser(t, js, "bridge", "secret", []string{"payments.>"})
			dir := t.TempDir()
			user, pass := filepath.Join(dir, "user"), filepath.Join(dir, "password")
			for f, v := range map[string]string{user: "bridge\n", pass: "secret\n"} {
				if err := os.WriteFile(f, []byte(v), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			b := New(Options{PublishTimeout: 10 * time.Second})
			t.Cleanup(func() { b.Close() })
			if err := b.Update(Config{Brokers: []Broker{{Name: "events", Type: NATS, Addresses: []string{url},
				JetStream: js, UsernameFile: user, PasswordFile: pass}}}); err != nil {
				t.Fatal(err)
			}
			pub := httptest.NewServer(b)
			t.Cleanup(pub.Close)

			for i, tc := range []struct {
				subject string
				status  int
			}{
				{"orders.created", http.StatusOK},
				{"payments.created", http.StatusBadGateway},
				{"payments.created", http.StatusBadGateway},
				{"orders.created", http.StatusOK},
			} {
				start := time.Now()
				code, body := publish(t, pub.URL+"/publish/events/"+tc.subject, []byte("x"), binaryHeaders(fmt.Sprint("e", i), "t", ""))
				if code != tc.status {
					t.Fatalf("publish %d to %s: %d %v, want %d", i, tc.subject, code, body, tc.status)
				}
				if tc.status != http.StatusOK && (!strings.Contains(body["cause"], "not authorized") ||
					!strings.Contains(body["cause"], `Permissions Violation for Publish to "payments.created"`)) {
					t.Errorf("publish %d to %s: cause %q, want it to say not authorized and quote the server", i, tc.subject, body["cause"])
				}
				t.Logf("publish %d to %s: %d %v in %v", i, tc.subject, code, body, time.Since(start).Round(time.Millisecond))
			}
		})
	}
}

// startNATSWithUser starts a nats-server whose only user may not publish
// to deny (everything else allowed) and returns its URL.
func startNATSWithUser(t *testing.T, jetStream bool, user, pass string, deny []string) string {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: jetStream, StoreDir: t.TempDir(),
		Users: []*server.User{{Username: user, Password: pass,
			Permissions: &server.Permissions{Publish: &server.SubjectPermission{Deny: deny}}}}})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	return fmt.Sprintf("nats://%s", ns.Addr().(*net.TCPAddr).String())
}
