package xdsserver

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/cespare/xxhash/v2"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
)

// kind is one of the resource types a Resources value holds, in the
// order go-control-plane's ADS cache sends them.
type kind int

const (
	kindCluster kind = iota
	kindEndpoint
	kindListener
	kindRoute
	kindSecret
	numKinds
)

// typeURLs maps a kind to its xDS type URL.
var typeURLs = [numKinds]string{
	kindCluster:  resource.ClusterType,
	kindEndpoint: resource.EndpointType,
	kindListener: resource.ListenerType,
	kindRoute:    resource.RouteType,
	kindSecret:   resource.SecretType,
}

// kindNames names a kind in errors, after the Envoy message.
var kindNames = [numKinds]string{
	kindCluster:  "cluster",
	kindEndpoint: "cluster load assignment",
	kindListener: "listener",
	kindRoute:    "route configuration",
	kindSecret:   "secret",
}

// byKind returns r's lists indexed by kind.
func (r Resources) byKind() [numKinds][]types.Resource {
	return [numKinds][]types.Resource{
		kindCluster:  r.Clusters,
		kindEndpoint: r.Endpoints,
		kindListener: r.Listeners,
		kindRoute:    r.Routes,
		kindSecret:   r.Secrets,
	}
}

// named is one resource with its name and content hash, sorted by name
// before the type's version is computed, so that the version does not depend
// on the order of the input list.
type named struct {
	name string
	hash uint64
}

// hashState is the scratch space of one version computation.
type hashState struct {
	buf   []byte
	items []named
	d     xxhash.Digest
}

var hashPool = sync.Pool{New: func() any { return new(hashState) }}

var deterministic = proto.MarshalOptions{Deterministic: true}

// version returns the content version of one resource type: a hash over
// the names and deterministic encodings of its resources. It rejects a
// resource of the wrong message type, a resource without a name and two
// resources with the same name.
func version(k kind, list []types.Resource) (string, error) {
	if len(list) == 0 {
		// An empty type still has a version, distinct from "" (never set).
		return "empty", nil
	}
	h := hashPool.Get().(*hashState)
	defer hashPool.Put(h)
	h.items = h.items[:0]
	for i, r := range list {
		name, err := checkKind(k, r)
		if err != nil {
			return "", fmt.Errorf("%s[%d]: %w", kindNames[k], i, err)
		}
		sum, ok := memo.hash(r)
		if !ok {
			h.buf, err = deterministic.MarshalAppend(h.buf[:0], r)
			if err != nil {
				return "", fmt.Errorf("%s %q: %w", kindNames[k], name, err)
			}
			h.d.Reset()
			_, _ = h.d.WriteString(name)
			_, _ = h.d.Write([]byte{0})
			_, _ = h.d.Write(h.buf)
			sum = h.d.Sum64()
			memo.setHash(r, sum)
		}
		h.items = append(h.items, named{name: name, hash: sum})
	}
	slices.SortFunc(h.items, func(a, b named) int { return strings.Compare(a.name, b.name) })
	h.d.Reset()
	var sum [8]byte
	for i, it := range h.items {
		if i > 0 && h.items[i-1].name == it.name {
			return "", fmt.Errorf("%s %q: listed twice", kindNames[k], it.name)
		}
		_, _ = h.d.WriteString(it.name)
		_, _ = h.d.Write([]byte{0})
		for j := range sum {
			sum[j] = byte(it.hash >> (8 * j))
		}
		_, _ = h.d.Write(sum[:])
	}
	return hex.EncodeToString(h.d.Sum(nil)), nil
}

// checkKind returns r's name, or an error when r is not of kind k or has no
// name.
func checkKind(k kind, r types.Resource) (string, error) {
	var name string
	switch m := r.(type) {
	case *clusterv3.Cluster:
		if k != kindCluster {
			return "", fmt.Errorf("got a Cluster, want a %s", kindNames[k])
		}
		name = m.GetName()
	case *endpointv3.ClusterLoadAssignment:
		if k != kindEndpoint {
			return "", fmt.Errorf("got a ClusterLoadAssignment, want a %s", kindNames[k])
		}
		name = m.GetClusterName()
	case *listenerv3.Listener:
		if k != kindListener {
			return "", fmt.Errorf("got a Listener, want a %s", kindNames[k])
		}
		name = m.GetName()
	case *routev3.RouteConfiguration:
		if k != kindRoute {
			return "", fmt.Errorf("got a RouteConfiguration, want a %s", kindNames[k])
		}
		name = m.GetName()
	case *tlsv3.Secret:
		if k != kindSecret {
			return "", fmt.Errorf("got a Secret, want a %s", kindNames[k])
		}
		name = m.GetName()
	default:
		return "", fmt.Errorf("unsupported message %T", r)
	}
	if name == "" {
		return "", errors.New("empty name")
	}
	return name, nil
}

// consistent checks that the EDS resources are exactly those the EDS
// clusters name and the route configurations exactly those the listeners
// name over RDS, so that a client never waits for a resource that does not
// exist and nothing is sent that no one asks for.
//
// It is go-control-plane's Snapshot.Consistent extended to the api_listener
// of a listener (the form proxyless gRPC uses), which Consistent does not
// look into: it would report every proxyless snapshot as inconsistent.
//
// same marks the kinds whose list is the node's current one (already
// checked): when both sides of a relation are, that relation is not
// checked again.
func consistent(r Resources, same [numKinds]bool) error {
	var errs []error
	if !same[kindCluster] || !same[kindEndpoint] {
		errs = consistentEDS(r)
	}
	if !same[kindListener] || !same[kindRoute] {
		errs = append(errs, consistentRDS(r)...)
	}
	if !same[kindListener] || !same[kindCluster] || !same[kindSecret] {
		errs = append(errs, consistentSDS(r)...)
	}
	return errors.Join(errs...)
}

func consistentEDS(r Resources) []error {
	var errs []error
	wantEDS := map[string]string{} // EDS name -> cluster naming it
	for _, res := range r.Clusters {
		c := res.(*clusterv3.Cluster)
		if c.GetType() != clusterv3.Cluster_EDS {
			continue
		}
		name := c.GetEdsClusterConfig().GetServiceName()
		if name == "" {
			name = c.GetName()
		}
		wantEDS[name] = c.GetName()
	}
	haveEDS := make(map[string]bool, len(r.Endpoints))
	for _, res := range r.Endpoints {
		name := res.(*endpointv3.ClusterLoadAssignment).GetClusterName()
		haveEDS[name] = true
		if _, ok := wantEDS[name]; !ok {
			errs = append(errs, fmt.Errorf("cluster load assignment %q: no EDS cluster names it", name))
		}
	}
	for _, name := range sortedKeys(wantEDS) {
		if !haveEDS[name] {
			errs = append(errs, fmt.Errorf("cluster %q: cluster load assignment %q is missing", wantEDS[name], name))
		}
	}
	return errs
}

func consistentRDS(r Resources) []error {
	var errs []error

	wantRDS := map[string]string{} // route configuration -> listener naming it
	for _, res := range r.Listeners {
		l := res.(*listenerv3.Listener)
		names, ok := memo.routeNames(l)
		if !ok {
			var err error
			if names, err = routeNames(l); err != nil {
				errs = append(errs, fmt.Errorf("listener %q: %w", l.GetName(), err))
			} else {
				memo.setRouteNames(l, names)
			}
		}
		for _, n := range names {
			wantRDS[n] = l.GetName()
		}
	}
	haveRDS := make(map[string]bool, len(r.Routes))
	for _, res := range r.Routes {
		name := res.(*routev3.RouteConfiguration).GetName()
		haveRDS[name] = true
		if _, ok := wantRDS[name]; !ok {
			errs = append(errs, fmt.Errorf("route configuration %q: no listener names it", name))
		}
	}
	for _, name := range sortedKeys(wantRDS) {
		if !haveRDS[name] {
			errs = append(errs, fmt.Errorf("listener %q: route configuration %q is missing", wantRDS[name], name))
		}
	}
	return errs
}

// routeNames returns the RDS route configuration names of l's HTTP
// connection managers: in its filter chains, its default filter chain and
// its api_listener.
func routeNames(l *listenerv3.Listener) ([]string, error) {
	var names []string
	add := func(hcm *hcmv3.HttpConnectionManager) {
		if n := hcm.GetRds().GetRouteConfigName(); n != "" {
			names = append(names, n)
		}
	}
	chains := l.GetFilterChains()
	if d := l.GetDefaultFilterChain(); d != nil {
		chains = append(chains[:len(chains):len(chains)], d)
	}
	for _, fc := range chains {
		for _, f := range fc.GetFilters() {
			if hcm := resource.GetHTTPConnectionManager(f); hcm != nil {
				add(hcm)
			}
		}
	}
	if a := l.GetApiListener().GetApiListener(); a != nil {
		hcm := new(hcmv3.HttpConnectionManager)
		if err := a.UnmarshalTo(hcm); err != nil {
			return names, fmt.Errorf("api_listener.api_listener: %w", err)
		}
		add(hcm)
	}
	return names, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
