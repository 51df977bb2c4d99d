// Package rotate keeps a proxy's certificate fresh: a Rotator renews it in
// the background at about half its life, retries with back-off when the
// control plane cannot be reached, and hands the current certificate to
// every new TLS handshake. Connections already established keep the
// certificate they started with (TLS authenticates only at the handshake),
// so a renewal never drops one.
//
// Concurrency: Run is called once, from one goroutine; Current,
// GetCertificate, GetClientCertificate, Ready and Trigger are safe to call
// from any goroutine at any time. OnRotate is called from Run's goroutine,
// serially.
package rotate

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Options.
const (
	DefaultRenewFraction = 0.5
	DefaultJitter        = 0.1
	DefaultMinBackoff    = time.Second
	DefaultMaxBackoff    = time.Minute
)

// Options configure a Rotator.
type Options struct {
	// Renew obtains a new certificate: a new key, a CSR, a call to the
	// control plane (csr.NewKey, csr.Build, csr.TLSCertificate). Required.
	// It should honour ctx and bound its own call with a timeout. The
	// certificate must have Leaf set or Certificate[0] parsable.
	Renew func(ctx context.Context) (*tls.Certificate, error)
	// OnRotate, if set, is called after each new certificate is installed
	// (e.g. to refresh an SDS secret or the expiry gauge).
	OnRotate func(*tls.Certificate)
	// RenewFraction is the point of a certificate's life (NotBefore to
	// NotAfter) at which it is renewed. Zero means DefaultRenewFraction
	// (0.5); it must be below 1.
	RenewFraction float64
	// Jitter spreads renewals of many proxies: the renewal point is drawn
	// uniformly from RenewFraction ± Jitter/2 of the life. Zero means
	// DefaultJitter (0.1); negative means none.
	Jitter float64
	// MinBackoff and MaxBackoff bound the exponential back-off between
	// failed renewals (each wait is drawn from [b/2, b]). Zero means
	// DefaultMinBackoff (1s) and DefaultMaxBackoff (1m).
	MinBackoff, MaxBackoff time.Duration
	// Logger receives renewal failures and successes. Nil means
	// slog.Default().
	Logger *slog.Logger
}

// Rotator renews a certificate in the background. Create it with New and
// start Run.
type Rotator struct {
	opts      Options
	log       *slog.Logger
	cur       atomic.Pointer[tls.Certificate]
	ready     chan struct{}
	readyOnce sync.Once
	trigger   chan struct{}
}

// New returns a Rotator with no certificate yet.
func New(opts Options) (*Rotator, error) {
	if opts.Renew == nil {
		return nil, errors.New("rotate: options: Renew is required")
	}
	if opts.RenewFraction == 0 {
		opts.RenewFraction = DefaultRenewFraction
	}
	if opts.Jitter == 0 {
		opts.Jitter = DefaultJitter
	}
	opts.Jitter = max(opts.Jitter, 0)
	if f := opts.RenewFraction; f-opts.Jitter/2 <= 0 || f+opts.Jitter/2 >= 1 {
		return nil, fmt.Errorf("rotate: options: renew fraction %v ± jitter %v/2 must stay within (0, 1)", f, opts.Jitter)
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.MaxBackoff < opts.MinBackoff {
		return nil, fmt.Errorf("rotate: options: max backoff %v below min backoff %v", opts.MaxBackoff, opts.MinBackoff)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Rotator{opts: opts, log: log.With("component", "identity"), ready: make(chan struct{}), trigger: make(chan struct{}, 1)}, nil
}

// Current returns the certificate in use, or nil before the first renewal
// succeeded.
func (r *Rotator) Current() *tls.Certificate { return r.cur.Load() }

// Ready is closed once the first certificate is installed.
func (r *Rotator) Ready() <-chan struct{} { return r.ready }

// Trigger asks Run to renew now rather than at the scheduled point, e.g.
// when the mesh's CA starts signing with a new root. It does not block.
func (r *Rotator) Trigger() {
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

var errNoCertificate = errors.New("rotate: no certificate yet")

// GetCertificate serves tls.Config.GetCertificate: the current certificate.
func (r *Rotator) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := r.cur.Load(); c != nil {
		return c, nil
	}
	return nil, errNoCertificate
}

// GetClientCertificate serves tls.Config.GetClientCertificate: the
// current certificate.
func (r *Rotator) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return r.GetCertificate(nil)
}

// Run renews until ctx is done, then returns nil. It renews at once when
// there is no certificate yet, then at the renewal point of each
// certificate; a failed renewal is retried with back-off, beyond the
// certificate's expiry if need be (the proxy keeps serving established
// connections; new handshakes fail once it has expired).
func (r *Rotator) Run(ctx context.Context) error {
	var next time.Time // zero: renew now
	for {
		if wait := time.Until(next); !next.IsZero() && wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			case <-r.trigger:
				t.Stop()
			}
		}
		cert, err := r.renew(ctx)
		if err != nil {
			return nil // ctx is done
		}
		r.install(cert)
		next = r.renewAt(cert.Leaf)
	}
}

// renew calls Renew until it succeeds, backing off between attempts; it
// fails only when ctx is done.
func (r *Rotator) renew(ctx context.Context) (*tls.Certificate, error) {
	backoff := r.opts.MinBackoff
	for attempt := 1; ; attempt++ {
		cert, err := r.opts.Renew(ctx)
		if err == nil {
			err = check(cert)
		}
		if err == nil {
			return cert, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		attrs := []any{"attempt", attempt, "retry_in", wait, "error", err}
		if cur := r.cur.Load(); cur == nil {
			r.log.Warn("certificate request failed; no certificate yet", attrs...)
		} else if left := time.Until(cur.Leaf.NotAfter); left <= 0 {
			r.log.Error("certificate renewal failed and the certificate has expired; new connections fail", attrs...)
		} else {
			r.log.Warn("certificate renewal failed", append(attrs, "expires_in", left.Round(time.Second))...)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		case <-r.trigger:
			t.Stop()
		}
		backoff = min(backoff*2, r.opts.MaxBackoff)
	}
}

func check(c *tls.Certificate) error {
	if c == nil || len(c.Certificate) == 0 || c.PrivateKey == nil {
		return errors.New("rotate: Renew returned no certificate or key")
	}
	if c.Leaf == nil {
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			return fmt.Errorf("rotate: leaf: %w", err)
		}
		c.Leaf = leaf
	}
	if now := time.Now(); !now.Before(c.Leaf.NotAfter) {
		return fmt.Errorf("rotate: Renew returned a certificate that expired at %s", c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

func (r *Rotator) install(c *tls.Certificate) {
	r.cur.Store(c)
	r.readyOnce.Do(func() { close(r.ready) })
	r.log.Info("certificate installed", "serial", c.Leaf.SerialNumber.Text(16), "not_after", c.Leaf.NotAfter.UTC())
	if r.opts.OnRotate != nil {
		r.opts.OnRotate(c)
	}
}

// renewAt draws the renewal point of leaf.
func (r *Rotator) renewAt(leaf *x509.Certificate) time.Time {
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	f := r.opts.RenewFraction + (rand.Float64()-0.5)*r.opts.Jitter
	return leaf.NotBefore.Add(time.Duration(float64(life) * f))
}
