package ads

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"

	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

// Resources is one consistent set of xDS resources, by name.
type Resources struct {
	Listeners map[string]*listenerv3.Listener
	Routes    map[string]*routev3.RouteConfiguration
	Clusters  map[string]*clusterv3.Cluster
	Endpoints map[string]*endpointv3.ClusterLoadAssignment
	// Secrets are the SDS Secrets the listeners' and clusters'
	// name-only SdsSecretConfigs refer to; they join static_resources.secrets.
	Secrets map[string]*tlsv3.Secret
}

// Assemble builds the Bootstrap the proxy applies: base's admin and static
// resources (listeners, clusters, secrets), node (base's, else node), and
// the xDS resources with rds replaced by inline route_config, EDS
// clusters made STATIC with their ClusterLoadAssignment as
// load_assignment, and the Secrets added to static_resources.secrets
// (sorted by name; the listeners and clusters must already refer to them
// by name only). xDS listeners and clusters follow the static ones,
// sorted by name. The result passes decode.Validate, the same checks as a
// bootstrap file. An error names the resource, e.g. `cluster "web": ...`.
func Assemble(base *bootstrapv3.Bootstrap, node *corev3.Node, r Resources) (*bootstrapv3.Bootstrap, error) {
	b, _, err := assemble(base, node, r)
	return b, err
}

// origin says which xDS resource produced an element of
// static_resources.listeners or static_resources.clusters, so errors from
// the proxy, which know only indexes, can name it.
type origin struct {
	listeners map[int]string // index → listener name ("" for static ones)
	clusters  map[int]string
	routes    map[string]string // "listeners[i].<hcm path>" → route_configuration name
}

func assemble(base *bootstrapv3.Bootstrap, node *corev3.Node, r Resources) (*bootstrapv3.Bootstrap, *origin, error) {
	b := &bootstrapv3.Bootstrap{}
	if base != nil {
		b = proto.Clone(base).(*bootstrapv3.Bootstrap)
	}
	if b.Node == nil {
		b.Node = node
	}
	if b.StaticResources == nil {
		b.StaticResources = &bootstrapv3.Bootstrap_StaticResources{}
	}
	sr := b.StaticResources
	org := &origin{listeners: map[int]string{}, clusters: map[int]string{}, routes: map[string]string{}}
	var errs []error
	static := map[string]bool{}
	for _, sec := range sr.Secrets {
		static[sec.GetName()] = true
	}
	for _, name := range sortedKeys(r.Secrets) {
		if static[name] {
			errs = append(errs, fmt.Errorf("secret %q: name: a static secret of the local bootstrap has this name", name))
			continue
		}
		sr.Secrets = append(sr.Secrets, r.Secrets[name])
	}
	static = map[string]bool{}
	for _, c := range sr.Clusters {
		static[c.GetName()] = true
	}
	for _, name := range sortedKeys(r.Clusters) {
		c := r.Clusters[name]
		if static[name] {
			errs = append(errs, fmt.Errorf("cluster %q: name: a static cluster of the local bootstrap has this name", name))
			continue
		}
		if eds, err := edsName(c); err != nil {
			errs = append(errs, prefixLines(fmt.Sprintf("cluster %q", name), err))
			continue
		} else if eds != "" {
			cla, ok := r.Endpoints[eds]
			if !ok {
				errs = append(errs, fmt.Errorf("cluster %q: eds_cluster_config: cluster_load_assignment %q not received", name, eds))
				continue
			}
			c = staticCluster(c, cla)
		}
		org.clusters[len(sr.Clusters)] = name
		sr.Clusters = append(sr.Clusters, c)
	}
	static = map[string]bool{}
	for _, l := range sr.Listeners {
		static[l.GetName()] = true
	}
	for _, name := range sortedKeys(r.Listeners) {
		l := r.Listeners[name]
		if static[name] {
			errs = append(errs, fmt.Errorf("listener %q: name: a static listener of the local bootstrap has this name", name))
			continue
		}
		i := len(sr.Listeners)
		_ = hcmFilters(l, func(path string, f *listenerv3.Filter) error {
			if rds, _ := rdsOf(path, f); rds != "" {
				org.routes["static_resources.listeners["+strconv.Itoa(i)+"]."+path+".route_config"] = rds
			}
			return nil
		})
		inl, err := inlineRoutes(l, r.Routes)
		if err != nil {
			errs = append(errs, prefixLines(fmt.Sprintf("listener %q", name), err))
			continue
		}
		org.listeners[i] = name
		sr.Listeners = append(sr.Listeners, inl)
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	if err := decode.Validate(b, ""); err != nil {
		return nil, nil, org.rewrite(err)
	}
	return b, org, nil
}

var elemRE = regexp.MustCompile(`^static_resources\.(listeners|clusters)\[(\d+)\]\.?`)

// rewrite turns "static_resources.listeners[3].x: y" lines of err into
// `listener "edge": x: y` for the xDS resources, and a path into an inlined
// route_config into `route_configuration "r" (listener "edge"): ...`.
func (o *origin) rewrite(err error) error {
	if err == nil || o == nil {
		return err
	}
	lines := strings.Split(err.Error(), "\n")
	for i, line := range lines {
		if name, rest, ok := o.routeLine(line); ok {
			lines[i] = fmt.Sprintf("route_configuration %q: %s", name, rest)
			continue
		}
		m := elemRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		idx, _ := strconv.Atoi(m[2])
		names, kind := o.listeners, "listener"
		if m[1] == "clusters" {
			names, kind = o.clusters, "cluster"
		}
		if name, ok := names[idx]; ok {
			lines[i] = fmt.Sprintf("%s %q: %s", kind, name, line[len(m[0]):])
		}
	}
	return errors.New(strings.Join(lines, "\n"))
}

func (o *origin) routeLine(line string) (name, rest string, ok bool) {
	for prefix, name := range o.routes {
		if r, found := strings.CutPrefix(line, prefix); found {
			r = strings.TrimPrefix(r, ".")
			r = strings.TrimPrefix(r, ":")
			return name, strings.TrimSpace(r), true
		}
	}
	return "", "", false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
