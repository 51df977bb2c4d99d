package brokertest

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATS is an embedded nats-server with JetStream storing to a test
// directory. Restart keeps the port and the store.
type NATS struct {
	// URL is the client URL (nats://127.0.0.1:<port>).
	URL string

	opts *server.Options
	srv  *server.Server
}

// StartNATS starts nats-server; jetStream enables JetStream with a file
// store in t.TempDir(). t.Cleanup shuts it down.
func StartNATS(t testing.TB, jetStream bool) *NATS {
	t.Helper()
	n := &NATS{opts: &server.Options{
		Host: "127.0.0.1", Port: FreePort(t), NoSigs: true, NoLog: true,
		JetStream: jetStream, StoreDir: t.TempDir(),
		ServerName: "trellis-test",
	}}
	n.URL = fmt.Sprintf("nats://127.0.0.1:%d", n.opts.Port)
	n.start(t)
	t.Cleanup(func() { n.Stop() })
	return n
}

func (n *NATS) start(t testing.TB) {
	t.Helper()
	s, err := server.NewServer(n.opts.Clone())
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		t.Fatalf("nats-server on %s not ready within 30s", n.URL)
	}
	n.srv = s
}

// Stop shuts the server down and waits for it.
func (n *NATS) Stop() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
	}
}

// Start starts a stopped server again on the same port and store.
func (n *NATS) Start(t testing.TB) {
	t.Helper()
	n.start(t)
}

// Restart stops the server and starts it again on the same port and store.
func (n *NATS) Restart(t testing.TB) {
	t.Helper()
	n.Stop()
	n.start(t)
}
