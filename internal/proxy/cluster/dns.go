package cluster

import (
	"context"
	"net"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
)

type dnsConfig struct {
	refresh time.Duration
	family  clusterv3.Cluster_DnsLookupFamily
}

// refreshLoop re-resolves the cluster's names every dns_refresh_rate until
// ctx is done.
func (c *Cluster) refreshLoop(ctx context.Context) {
	t := time.NewTicker(c.dns.refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rctx, cancel := context.WithTimeout(ctx, c.dns.refresh)
			c.resolve(rctx)
			cancel()
		}
	}
}

// resolve looks up every endpoint's name and installs the result. A name
// that fails to resolve keeps its previous addresses (Envoy keeps the last
// good answer).
func (c *Cluster) resolve(ctx context.Context) {
	prev := map[string][]HostStatus{}
	for _, h := range c.Hosts() {
		prev[h.Host.Hostname] = append(prev[h.Host.Hostname], h)
	}
	var all []HostStatus
	for _, e := range c.endpoints {
		ips, err := lookup(ctx, e.host, c.dns.family)
		if err != nil || len(ips) == 0 {
			all = append(all, prev[hostnameFor(e)]...)
			continue
		}
		if c.Kind == LogicalDNS {
			ips = ips[:1]
		}
		for _, ip := range ips {
			addr := net.JoinHostPort(ip.String(), e.port)
			all = append(all, HostStatus{Host: c.mgr.host(c.Name, addr, hostnameFor(e)), Weight: e.weight, Priority: e.priority, Locality: e.locality, LocalityWeight: e.localityWeight})
		}
	}
	c.setMembers(all)
}

func hostnameFor(e endpointSpec) string {
	if e.hostname != "" {
		return e.hostname
	}
	return e.host
}

// lookup resolves name following Envoy's dns_lookup_family.
func lookup(ctx context.Context, name string, fam clusterv3.Cluster_DnsLookupFamily) ([]net.IP, error) {
	if ip := net.ParseIP(name); ip != nil {
		return []net.IP{ip}, nil
	}
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, name)
	if err != nil {
		return nil, err
	}
	var v4, v6 []net.IP
	for _, a := range addrs {
		if a.IP.To4() != nil {
			v4 = append(v4, a.IP)
		} else {
			v6 = append(v6, a.IP)
		}
	}
	switch fam {
	case clusterv3.Cluster_V4_ONLY:
		return v4, nil
	case clusterv3.Cluster_V6_ONLY:
		return v6, nil
	case clusterv3.Cluster_V4_PREFERRED:
		if len(v4) > 0 {
			return v4, nil
		}
		return v6, nil
	case clusterv3.Cluster_ALL:
		return append(v4, v6...), nil
	default: // AUTO: IPv6 first, falling back to IPv4
		if len(v6) > 0 {
			return v6, nil
		}
		return v4, nil
	}
}
