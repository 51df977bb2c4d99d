package ads

import (
	"fmt"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// tryApply applies the pending responses once they form a consistent set,
// then ACKs them. If the proxy refuses the set, the types the error blames
// are NACKed and the rest is tried again without them.
func (s *session) tryApply() error {
	c := s.c
	for {
		var pend []*typeState
		for _, u := range allTypes {
			if c.types[u].hasPend {
				pend = append(pend, c.types[u])
			}
		}
		if len(pend) == 0 {
			return nil
		}
		if !c.applied && (c.types[ClusterType].effective() == nil || c.types[ListenerType].effective() == nil) {
			return nil // the first configuration has both listeners and clusters
		}
		r, missing := c.resources(true)
		if missing != "" {
			c.logWaiting(missing)
			return nil
		}
		err := c.apply(r)
		if err == nil {
			for _, t := range pend {
				t.current, t.acked = t.pending, t.pendVer
				t.pending, t.hasPend, t.pendVer = nil, false, ""
				t.rejected, t.rejections = "", 0
				c.opts.Metrics.Update(shortType(t.url), true)
			}
			// The cache is written before the ACKs go out, so what the
			// control plane believes applied survives a restart.
			c.saveCache()
			for _, t := range pend {
				if err := s.send(t, t.acked, nil); err != nil {
					return err
				}
			}
			return nil
		}
		blamed := blame(err, pend, c.types)
		for _, t := range blamed {
			v := t.pendVer
			t.pending, t.hasPend, t.pendVer = nil, false, ""
			if err := s.nack(t, v, err); err != nil {
				return err
			}
		}
		if err := s.resubscribe(); err != nil {
			return err
		}
		if len(blamed) == len(pend) {
			return nil
		}
	}
}

// blame returns the types among pend that err's lines name: a line starts
// with the kind of the resource at fault (`cluster "web": ...`). If a line
// names no pending type, every pending type is to blame.
func blame(err error, pend []*typeState, types map[string]*typeState) []*typeState {
	hit := map[*typeState]bool{}
	for _, line := range strings.Split(err.Error(), "\n") {
		var ts []*typeState
		switch {
		case strings.HasPrefix(line, "listener \""):
			ts = append(ts, types[ListenerType])
		case strings.HasPrefix(line, "route_configuration \""):
			ts = append(ts, types[RouteType])
		case strings.HasPrefix(line, "cluster_load_assignment \""):
			ts = append(ts, types[EndpointType])
		case strings.HasPrefix(line, "secret \""):
			ts = append(ts, types[SecretType])
		case strings.HasPrefix(line, "cluster \""):
			ts = append(ts, types[ClusterType])
			if strings.Contains(line, "load_assignment") {
				ts = append(ts, types[EndpointType])
			}
		}
		found := false
		for _, t := range ts {
			if t.hasPend {
				hit[t], found = true, true
			}
		}
		if !found {
			return pend
		}
	}
	var out []*typeState
	for _, t := range pend {
		if hit[t] {
			out = append(out, t)
		}
	}
	return out
}

// resources gathers the effective resources of every type (with
// effective false: the current ones, as last applied), or names one that
// is referenced but not received yet. Listeners and clusters come with
// their SdsSecretConfigs made name-only, and Secrets hold every secret
// they name, IdentitySecret included.
func (c *Client) resources(effective bool) (Resources, string) {
	of := func(u string) map[string]any {
		if effective {
			return c.types[u].effective()
		}
		return c.types[u].current
	}
	r := Resources{
		Listeners: map[string]*listenerv3.Listener{}, Routes: map[string]*routev3.RouteConfiguration{},
		Clusters: map[string]*clusterv3.Cluster{}, Endpoints: map[string]*endpointv3.ClusterLoadAssignment{},
		Secrets: map[string]*tlsv3.Secret{},
	}
	for n, v := range of(RouteType) {
		r.Routes[n] = v.(*routev3.RouteConfiguration)
	}
	for n, v := range of(EndpointType) {
		r.Endpoints[n] = v.(*endpointv3.ClusterLoadAssignment)
	}
	secrets := of(SecretType)
	secret := func(name string) string {
		if name == IdentitySecret {
			if c.identity == nil {
				return fmt.Sprintf("secret %q", name)
			}
			r.Secrets[name] = c.identity
			return ""
		}
		sec, ok := secrets[name]
		if !ok {
			return fmt.Sprintf("secret %q", name)
		}
		r.Secrets[name] = sec.(*tlsv3.Secret)
		return ""
	}
	for _, n := range sortedKeys(of(ClusterType)) {
		cl := of(ClusterType)[n].(*cluster)
		if _, ok := r.Endpoints[cl.eds]; cl.eds != "" && !ok {
			return r, fmt.Sprintf("cluster_load_assignment %q", cl.eds)
		}
		for _, sn := range cl.sds {
			if m := secret(sn); m != "" {
				return r, m
			}
		}
		r.Clusters[n] = cl.run
	}
	for _, n := range sortedKeys(of(ListenerType)) {
		l := of(ListenerType)[n].(*listener)
		for _, rn := range l.rds {
			if _, ok := r.Routes[rn]; !ok {
				return r, fmt.Sprintf("route_configuration %q", rn)
			}
		}
		for _, sn := range l.sds {
			if m := secret(sn); m != "" {
				return r, m
			}
		}
		r.Listeners[n] = l.run
	}
	return r, ""
}

// apply assembles r with the local bootstrap and hands it to the proxy.
func (c *Client) apply(r Resources) error {
	b, org, err := assemble(c.opts.Base, c.opts.Node, r)
	if err != nil {
		return err
	}
	if err := c.opts.Proxy.Apply(b); err != nil {
		return org.rewrite(err)
	}
	c.applied = true
	c.applies++
	c.waiting = ""
	c.log.Info("xDS configuration applied", "listeners", len(r.Listeners), "clusters", len(r.Clusters),
		"lds", c.versionOf(ListenerType), "cds", c.versionOf(ClusterType))
	if c.opts.OnApply != nil {
		c.opts.OnApply()
	}
	return nil
}

func (c *Client) versionOf(u string) string {
	if t := c.types[u]; t.hasPend {
		return t.pendVer
	}
	return c.types[u].acked
}
