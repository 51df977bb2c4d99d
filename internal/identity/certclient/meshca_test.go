package certclient_test

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/trellis-mesh/trellis/internal/control/meshca"
	"github.com/trellis-mesh/trellis/internal/identity/certclient"
	"github.com/trellis-mesh/trellis/internal/store/bolt"
)

// TestControlPlaneService: the client against the control plane's own
// certificate service (meshca over a bbolt store): it learns its identity
// with Identify (no fallback), and gets a leaf for it.
func TestControlPlaneService(t *testing.T) {
	s, err := bolt.Open(filepath.Join(t.TempDir(), "trellis.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	m, err := meshca.New(meshca.Options{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	srv := grpc.NewServer()
	m.Register(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)

	var logs syncBuffer
	tok, err := m.CreateToken(ctx, "default", "web", 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := certclient.New(certclient.Options{Conn: dial(t, ln.Addr().String()), Token: func() (string, error) { return tok.Token, nil },
		Node: "default/web-1", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := c.Renew(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := cert.Leaf.URIs[0].String(); got != "spiffe://default.trellis.local/default/web" {
		t.Errorf("leaf URI = %s", got)
	}
	if strings.Contains(logs.String(), "does not serve") {
		t.Errorf("the client fell back to the default trust domain:\n%s", logs.String())
	}
}
