package identity

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"time"

	"github.com/trellis-mesh/trellis/internal/identity/ca"
)

// Certificate kinds, the kind label of trellis_identity_cert_expiry_seconds.
const (
	KindLeaf         = "leaf"
	KindRoot         = "root"
	KindIntermediate = "intermediate"
)

// Remaining returns how long cert stays valid: negative once expired.
func Remaining(cert *x509.Certificate) time.Duration { return time.Until(cert.NotAfter) }

// Watched is one certificate the Watch loop looks at.
type Watched struct {
	Kind    string // KindLeaf, KindRoot or KindIntermediate
	Mesh    string
	Service string // "" for CA certificates
	Cert    *x509.Certificate
}

// CACertificates lists the CA certificates of a mesh's CA state: each
// trusted CA's chain, the anchor as KindRoot when self-signed (else
// KindIntermediate), the rest as KindIntermediate.
func CACertificates(mesh string, s *ca.State) []Watched {
	var out []Watched
	for _, c := range s.CAs() {
		chain := c.Chain()
		for i, cert := range chain {
			kind := KindIntermediate
			if i == len(chain)-1 && bytes.Equal(cert.RawIssuer, cert.RawSubject) {
				kind = KindRoot
			}
			out = append(out, Watched{Kind: kind, Mesh: mesh, Cert: cert})
		}
	}
	return out
}

// ExpiryGauge is where Watch exports remaining lifetimes;
// *metrics.Identity implements it.
type ExpiryGauge interface {
	Set(kind, mesh, service string, notAfter time.Time)
	Delete(kind, mesh, service string)
}

// Defaults of WatchOptions.
const (
	DefaultWatchInterval = time.Hour
	DefaultWarnBefore    = 30 * 24 * time.Hour
	rewarnAfter          = 24 * time.Hour
)

// WatchOptions configure Watch.
type WatchOptions struct {
	// Certificates returns the certificates to watch now; called at each
	// check. Required.
	Certificates func() []Watched
	// Interval between checks. Zero means DefaultWatchInterval (1h).
	Interval time.Duration
	// WarnBefore is how long before a root or intermediate expires Watch
	// starts warning. Zero means DefaultWarnBefore (30 days).
	WarnBefore time.Duration
	// Logger receives the warnings. Nil means slog.Default().
	Logger *slog.Logger
	// Gauge, if set, receives every certificate's expiry; series of
	// certificates no longer listed are deleted. When two certificates
	// share kind, mesh and service (two roots during a rotation), the
	// earlier expiry is exported.
	Gauge ExpiryGauge
}

// Watch checks the certificates at once and then every Interval until ctx
// is done, then returns nil. A root or intermediate within WarnBefore of
// its expiry is logged at Warn level, and one past it at Error level, at
// most once a day per certificate; leaves renew themselves and are only
// exported to the gauge.
func Watch(ctx context.Context, opts WatchOptions) error {
	if opts.Certificates == nil {
		return errors.New("identity: watch: Certificates is required")
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultWatchInterval
	}
	if opts.WarnBefore <= 0 {
		opts.WarnBefore = DefaultWarnBefore
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "identity")
	w := watcher{opts: opts, log: log, warned: map[string]time.Time{}, exported: map[[3]string]bool{}}
	t := time.NewTicker(opts.Interval)
	defer t.Stop()
	for {
		w.check()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

type watcher struct {
	opts     WatchOptions
	log      *slog.Logger
	warned   map[string]time.Time // by issuer+serial: when last warned
	exported map[[3]string]bool
}

func (w *watcher) check() {
	now := time.Now()
	earliest := map[[3]string]time.Time{}
	seen := map[string]bool{}
	for _, c := range w.opts.Certificates() {
		k := [3]string{c.Kind, c.Mesh, c.Service}
		if t, ok := earliest[k]; !ok || c.Cert.NotAfter.Before(t) {
			earliest[k] = c.Cert.NotAfter
		}
		if c.Kind == KindLeaf {
			continue
		}
		left := c.Cert.NotAfter.Sub(now)
		if left > w.opts.WarnBefore {
			continue
		}
		id := string(c.Cert.RawIssuer) + c.Cert.SerialNumber.String()
		seen[id] = true
		if last, ok := w.warned[id]; ok && now.Sub(last) < rewarnAfter {
			continue
		}
		w.warned[id] = now
		attrs := []any{"mesh", c.Mesh, "kind", c.Kind, "subject", c.Cert.Subject.String(), "not_after", c.Cert.NotAfter.UTC()}
		if left <= 0 {
			w.log.Error("CA certificate expired; proxies cannot renew until the CA is rotated (trellis ca rotate --force)", attrs...)
		} else {
			w.log.Warn("CA certificate expires soon; rotate the CA (trellis ca rotate)", append(attrs, "remaining", left.Round(time.Minute).String())...)
		}
	}
	for id := range w.warned {
		if !seen[id] {
			delete(w.warned, id) // gone or renewed: forget it
		}
	}
	if w.opts.Gauge == nil {
		return
	}
	for k, t := range earliest {
		w.opts.Gauge.Set(k[0], k[1], k[2], t)
	}
	for k := range w.exported {
		if _, ok := earliest[k]; !ok {
			w.opts.Gauge.Delete(k[0], k[1], k[2])
		}
	}
	w.exported = make(map[[3]string]bool, len(earliest))
	for k := range earliest {
		w.exported[k] = true
	}
}
