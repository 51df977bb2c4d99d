package ads

import (
	"crypto/tls"
	"fmt"
)

// SetIdentity hands the client the proxy's current certificate (chain and
// private key), which becomes the Secret IdentitySecret. A configuration
// held for want of it is applied; the current one is re-applied with it,
// so new connections present the new certificate while established ones
// keep theirs. Safe to call from any goroutine (e.g. rotate.Options.
// OnRotate); only the newest certificate counts.
func (c *Client) SetIdentity(cert *tls.Certificate) {
	c.idMu.Lock()
	c.idNext = cert
	c.idMu.Unlock()
	select {
	case c.idWake <- struct{}{}:
	default:
	}
}

// takeIdentity installs the certificate SetIdentity handed over last. It
// reports whether there was a new one.
func (c *Client) takeIdentity() bool {
	c.idMu.Lock()
	cert := c.idNext
	c.idNext = nil
	c.idMu.Unlock()
	if cert == nil {
		return false
	}
	sec, err := identitySecret(cert)
	if err != nil {
		c.log.Error("ignoring the proxy's certificate", "error", err.Error())
		return false
	}
	c.identity = sec
	return true
}

// identityChanged takes a new certificate on a stream: a pending
// configuration waiting for it is applied (and ACKed); otherwise the
// current configuration is re-applied with it.
func (s *session) identityChanged() error {
	c := s.c
	if !c.takeIdentity() {
		return nil
	}
	before := c.applies
	if err := s.tryApply(); err != nil {
		return err
	}
	if c.applies == before {
		c.reapply()
	}
	return nil
}

// reapply applies the current resources again, with the newest
// IdentitySecret, if they use it. Nothing is ACKed or NACKed: these
// versions were ACKed already (or come from the cache). A failure is
// logged and the proxy keeps its configuration.
func (c *Client) reapply() {
	if c.types[ListenerType].current == nil || c.types[ClusterType].current == nil || !c.usesIdentity() {
		return
	}
	r, missing := c.resources(false)
	if missing != "" {
		c.logWaiting(missing)
		return
	}
	if err := c.apply(r); err != nil {
		c.log.Error("cannot re-apply the configuration with the new certificate; new connections keep the old one", "error", err.Error())
	}
}

// usesIdentity reports whether a current listener or cluster names
// IdentitySecret.
func (c *Client) usesIdentity() bool {
	for _, v := range c.types[ListenerType].current {
		for _, n := range v.(*listener).sds {
			if n == IdentitySecret {
				return true
			}
		}
	}
	for _, v := range c.types[ClusterType].current {
		for _, n := range v.(*cluster).sds {
			if n == IdentitySecret {
				return true
			}
		}
	}
	return false
}

// logWaiting says why a configuration is held, once per reason: the
// proxy's certificate is a notable wait (and without a token a permanent
// one); other resources are normally moments away.
func (c *Client) logWaiting(missing string) {
	if missing == c.waiting {
		return
	}
	c.waiting = missing
	switch {
	case missing != fmt.Sprintf("secret %q", IdentitySecret):
		c.log.Debug("waiting for resources before applying", "missing", missing)
	case !c.opts.Identity:
		c.log.Error("the configuration needs this proxy's certificate (secret "+IdentitySecret+", mutual TLS), "+
			"but the proxy has no dataplane token (--token-file): it is not applied and the proxy stays not ready", "missing", missing)
	default:
		c.log.Info("waiting for this proxy's certificate before applying the configuration", "missing", missing)
	}
}
