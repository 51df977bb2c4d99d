package ads_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/internal/identity/certclient/signtest"
)

// loadStats counts one load generator's requests.
type loadStats struct {
	name     string
	ok, fail atomic.Int64
	mu       sync.Mutex
	errs     []string
}

func (s *loadStats) record(code int, body string, err error) {
	if err == nil && code == 200 && body == "app" {
		s.ok.Add(1)
		return
	}
	s.fail.Add(1)
	s.mu.Lock()
	if len(s.errs) < 5 {
		s.errs = append(s.errs, fmt.Sprintf("%d %q %v", code, body, err))
	}
	s.mu.Unlock()
}

// countingDialer counts the TCP connections a transport opens.
type countingDialer struct {
	n atomic.Int64
	d net.Dialer
}

func (c *countingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c.n.Add(1)
	return c.d.DialContext(ctx, network, addr)
}

// TestRotationUnderLoad: with 3-second certificates both sidecars rotate
// every second or two. Under steady load — one long-lived HTTP/2
// connection to the client sidecar, a new connection per request, and one
// long-lived HTTP/2 connection over mutual TLS straight to the server
// sidecar's inbound listener — no request fails, the long-lived
// connections are never replaced, and new TLS handshakes see each new
// server certificate.
func TestRotationUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for 12 seconds")
	}
	const duration = 12 * time.Second
	m := startMeshPair(t, signtest.Options{LeafTTL: 3 * time.Second})
	waitFor(t, "traffic client → server", func() bool {
		code, body, err := getBody(http.DefaultClient, "http://"+m.outbound+"/")
		return err == nil && code == 200 && body == "app"
	})
	rotStart := [2]int64{m.client.rotations.Load(), m.server.rotations.Load()}

	var h2cDial, mtlsDial countingDialer
	var ps http.Protocols
	ps.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Transport: &http.Transport{Protocols: &ps, DialContext: h2cDial.DialContext}}
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	cert := issue(t, m.sign, "client")
	direct := &http.Client{Transport: &http.Transport{DialContext: mtlsDial.DialContext, ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{*cert}}}} //nolint:gosec // the peer is checked below
	t.Cleanup(func() {
		for _, c := range []*http.Client{h2c, fresh, direct} {
			c.CloseIdleConnections()
		}
	})
	loads := []struct {
		stats  *loadStats
		client *http.Client
		url    string
	}{
		{&loadStats{name: "long-lived h2c to the client sidecar"}, h2c, "http://" + m.outbound + "/"},
		{&loadStats{name: "new connection per request"}, fresh, "http://" + m.outbound + "/"},
		{&loadStats{name: "long-lived h2 over mTLS to the server sidecar"}, direct, "https://" + m.inbound + "/"},
	}

	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var wg sync.WaitGroup
	for _, l := range loads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				code, body, err := getBody(l.client, l.url)
				l.stats.record(code, body, err)
			}
		}()
	}
	// New handshakes with the server sidecar: the certificate it presents
	// changes with each rotation.
	serials := map[string]bool{}
	var handshakes, peerErrs int
	tick := time.NewTicker(100 * time.Millisecond)
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
			handshakes++
			conn, err := handshake(m.inbound, nil, "h2")
			if err != nil {
				peerErrs++
				continue
			}
			leaf := conn.ConnectionState().PeerCertificates[0]
			if leaf.URIs[0].String() != serverID || time.Now().After(leaf.NotAfter) {
				peerErrs++
			}
			serials[leaf.SerialNumber.Text(16)] = true
			conn.Close()
		}
	}
	tick.Stop()
	wg.Wait()

	clientRot, serverRot := m.client.rotations.Load()-rotStart[0], m.server.rotations.Load()-rotStart[1]
	var total, failed int64
	for _, l := range loads {
		ok, fail := l.stats.ok.Load(), l.stats.fail.Load()
		total, failed = total+ok+fail, failed+fail
		t.Logf("%s: %d requests, %d failed %v", l.stats.name, ok+fail, fail, l.stats.errs)
		if fail != 0 || ok == 0 {
			t.Errorf("%s: %d ok, %d failed: %v", l.stats.name, ok, fail, l.stats.errs)
		}
	}
	t.Logf("rotation under load (%v, 3s leaves): %d requests, %d failures; rotations: client sidecar %d, server sidecar %d; "+
		"%d new handshakes saw %d distinct server certificates; TCP connections: h2c %d, mTLS h2 %d",
		duration, total, failed, clientRot, serverRot, handshakes, len(serials), h2cDial.n.Load(), mtlsDial.n.Load())
	if clientRot < 3 || serverRot < 3 {
		t.Errorf("rotations: client %d, server %d; want at least 3 each in %v", clientRot, serverRot, duration)
	}
	if len(serials) < 3 || peerErrs != 0 {
		t.Errorf("new handshakes saw %d server certificates (%d bad or failed); want at least 3, none bad", len(serials), peerErrs)
	}
	if h2cDial.n.Load() != 1 || mtlsDial.n.Load() != 1 {
		t.Errorf("the long-lived connections were replaced: h2c dialed %d times, mTLS h2 %d times", h2cDial.n.Load(), mtlsDial.n.Load())
	}
}
