package rotate

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/trellis-mesh/trellis/internal/identity/ca"
	"github.com/trellis-mesh/trellis/internal/identity/csr"
)

var id = spiffeid.RequireFromString("spiffe://example.org/default/web")

// issuer is a real CA behind a Renew function that can be made to fail.
type issuer struct {
	t     *testing.T
	ca    *ca.CA
	mu    sync.Mutex
	calls []time.Time
	fail  int // fail this many next calls
}

func newIssuer(t *testing.T, leafTTL time.Duration) *issuer {
	c, err := ca.Generate(id.TrustDomain(), ca.GenerateOptions{Options: ca.Options{LeafTTL: leafTTL}})
	if err != nil {
		t.Fatal(err)
	}
	return &issuer{t: t, ca: c}
}

func (i *issuer) renew(context.Context) (*tls.Certificate, error) {
	i.mu.Lock()
	i.calls = append(i.calls, time.Now())
	if i.fail > 0 {
		i.fail--
		i.mu.Unlock()
		return nil, errors.New("control plane unreachable")
	}
	i.mu.Unlock()
	key, err := csr.NewKey()
	if err != nil {
		return nil, err
	}
	der, err := csr.Build(key, id)
	if err != nil {
		return nil, err
	}
	req, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, err
	}
	chain, err := i.ca.Sign(req, id, 0)
	if err != nil {
		return nil, err
	}
	return csr.TLSCertificate(key, id, [][]byte{chain[0].Raw})
}

func (i *issuer) callTimes() []time.Time {
	i.mu.Lock()
	defer i.mu.Unlock()
	return append([]time.Time(nil), i.calls...)
}

func (i *issuer) setFail(n int) { i.mu.Lock(); i.fail = n; i.mu.Unlock() }

// start runs a Rotator until the test ends and checks that Run returns.
func start(t *testing.T, opts Options) *Rotator {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return r
}

func TestRenewsAtHalfLife(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		iss := newIssuer(t, time.Hour)
		var rotated []*tls.Certificate
		r := start(t, Options{Renew: iss.renew, OnRotate: func(c *tls.Certificate) { rotated = append(rotated, c) }})
		synctest.Wait()
		select {
		case <-r.Ready():
		default:
			t.Fatal("not ready after the first renewal")
		}
		first := r.Current()
		if first == nil || len(iss.callTimes()) != 1 {
			t.Fatalf("after start: %d calls, current %v", len(iss.callTimes()), first)
		}
		// Life is 61 minutes (NotBefore backdated 1m); the renewal point is
		// drawn from [0.45, 0.55] of it: between 26m27s and 32m33s from now.
		time.Sleep(26 * time.Minute)
		synctest.Wait()
		if n := len(iss.callTimes()); n != 1 {
			t.Fatalf("renewed %d times before 0.45 of the life", n-1)
		}
		time.Sleep(7 * time.Minute)
		synctest.Wait()
		if n := len(iss.callTimes()); n != 2 {
			t.Fatalf("%d calls by 0.55 of the life, want 2", n)
		}
		if cur := r.Current(); cur == first || cur.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 {
			t.Fatal("the certificate did not change")
		}
		if len(rotated) != 2 || rotated[1] != r.Current() {
			t.Fatalf("OnRotate saw %d certificates", len(rotated))
		}
	})
}

func TestBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		iss := newIssuer(t, time.Hour)
		iss.setFail(3) // no certificate yet: keep trying
		r := start(t, Options{Renew: iss.renew, MaxBackoff: 4 * time.Second})
		synctest.Wait()
		if _, err := r.GetCertificate(nil); err == nil {
			t.Fatal("GetCertificate before the first certificate succeeded")
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if r.Current() == nil {
			t.Fatal("no certificate after the failures stopped")
		}
		first := r.Current()
		iss.setFail(1 << 20)
		time.Sleep(40 * time.Minute) // past any renewal point: the failures begin
		synctest.Wait()
		if r.Current() != first {
			t.Fatal("the certificate changed although every renewal failed")
		}
		calls := iss.callTimes()
		// Calls: 3 failures + 1 success, then 1+ scheduled failures.
		gaps := []time.Duration{}
		for i := 1; i < 4; i++ {
			gaps = append(gaps, calls[i].Sub(calls[i-1]))
		}
		bounds := [][2]time.Duration{{500 * time.Millisecond, time.Second}, {time.Second, 2 * time.Second}, {2 * time.Second, 4 * time.Second}}
		for i, g := range gaps {
			if g < bounds[i][0] || g > bounds[i][1] {
				t.Errorf("wait %d was %v, want within %v", i+1, g, bounds[i])
			}
		}
		calls = iss.callTimes()
		last := calls[len(calls)-1].Sub(calls[len(calls)-2])
		if len(calls) < 10 || last < 2*time.Second || last > 4*time.Second {
			t.Errorf("%d calls; wait at the cap was %v, want within [2s, 4s]", len(calls), last)
		}
		iss.setFail(0)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if r.Current() == first {
			t.Fatal("no new certificate once renewals succeed again")
		}
	})
}

// A renewal changes what new handshakes present; a connection established
// before it keeps working with the certificate it started with.
func TestEstablishedConnectionsSurvive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		iss := newIssuer(t, time.Hour)
		r := start(t, Options{Renew: iss.renew})
		synctest.Wait()
		bundle := iss.ca.Bundle().X509()
		verify := func(raw [][]byte, _ [][]*x509.Certificate) error {
			got, _, err := x509svid.ParseAndVerify(raw, bundle)
			if err == nil && got != id {
				err = errors.New("unexpected peer " + got.String())
			}
			return err
		}
		server := &tls.Config{GetCertificate: r.GetCertificate, ClientAuth: tls.RequireAnyClientCert, VerifyPeerCertificate: verify, MinVersion: tls.VersionTLS13}
		client := &tls.Config{GetClientCertificate: r.GetClientCertificate, InsecureSkipVerify: true, VerifyPeerCertificate: verify, MinVersion: tls.VersionTLS13}
		dial := func() (*tls.Conn, *tls.Conn) {
			a, b := net.Pipe()
			s, c := tls.Server(a, server), tls.Client(b, client)
			t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
			errc := make(chan error, 1)
			go func() { errc <- s.Handshake() }()
			if err := c.Handshake(); err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			go func() { _, _ = io.Copy(s, s) }() // echo
			return s, c
		}
		echo := func(c *tls.Conn, msg string) {
			t.Helper()
			if _, err := c.Write([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, len(msg))
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
				t.Fatalf("echo %q: %q, %v", msg, buf, err)
			}
		}
		serial := func(c *tls.Conn) string { return c.ConnectionState().PeerCertificates[0].SerialNumber.String() }

		s1, c1 := dial()
		old := r.Current().Leaf.SerialNumber.String()
		if serial(c1) != old || serial(s1) != old {
			t.Fatal("first connection does not use the first certificate")
		}
		r.Trigger()
		synctest.Wait()
		if r.Current().Leaf.SerialNumber.String() == old {
			t.Fatal("Trigger did not renew")
		}
		echo(c1, "still here")
		if serial(c1) != old {
			t.Fatal("the established connection's peer certificate changed")
		}
		_, c2 := dial()
		if serial(c2) == old {
			t.Fatal("a new connection still uses the old certificate")
		}
		echo(c2, "new")
	})
}

func TestNewRejects(t *testing.T) {
	renew := func(context.Context) (*tls.Certificate, error) { return nil, nil }
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no renew", Options{}, "Renew is required"},
		{"fraction too high", Options{Renew: renew, RenewFraction: 0.98}, "must stay within (0, 1)"},
		{"backoffs inverted", Options{Renew: renew, MinBackoff: time.Minute, MaxBackoff: time.Second}, "below min backoff"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// A Renew that returns an expired certificate is a failure, retried.
func TestRejectsExpiredCertificate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		iss := newIssuer(t, time.Hour)
		good, err := iss.renew(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Hour)
		calls := 0
		r := start(t, Options{Renew: func(ctx context.Context) (*tls.Certificate, error) {
			calls++
			if calls == 1 {
				return good, nil // expired by now
			}
			return iss.renew(ctx)
		}})
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if r.Current() == nil || r.Current() == good || calls != 2 {
			t.Fatalf("after an expired certificate: %d calls, current is the expired one %v", calls, r.Current() == good)
		}
	})
}
