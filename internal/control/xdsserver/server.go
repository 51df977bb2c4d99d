package xdsserver

import (
	"context"
	"log/slog"
	"slices"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
)

// MetadataProxyless is the node metadata key a proxyless gRPC client sets to
// true. Such a node is answered with exactly the resources it names.
const MetadataProxyless = "trellis.dev/proxyless"

// Options configures a Server. The zero value is a working server without
// callbacks that logs nothing.
type Options struct {
	// OnConnect is called when a node opens its first stream, with that
	// stream's context (its peer, its deadline) and the node from its first
	// request, before any response is sent on it: a SetResources call made
	// here is the first thing the node receives. Nil means no call.
	OnConnect func(ctx context.Context, node *corev3.Node)
	// OnDisconnect is called when a node's last open stream closes. Nil
	// means no call.
	OnDisconnect func(node *corev3.Node)
	// OnStatus is called after every change of a node's status: stream
	// opened or closed, response sent, ACK, NACK. It gets a copy. Calls are
	// serialised across all nodes and made without the server's locks
	// held: keep it short and do not wait on xDS streams in it. Nil means
	// no call.
	OnStatus func(nodeID string, st NodeStatus)
	// Logger receives connects, disconnects, NACKs and go-control-plane's
	// own logs (its info level mapped to debug). Nil discards.
	Logger *slog.Logger
}

// Resources is the full configuration of one node: Envoy v3 Listeners,
// RouteConfigurations, Clusters and ClusterLoadAssignments, and the SDS
// Secrets (envoy.extensions.transport_sockets.tls.v3.Secret) that its
// TLS contexts read over ADS (secret.go).
type Resources struct {
	Listeners, Routes, Clusters, Endpoints []types.Resource
	Secrets                                []types.Resource
	// SecretsVersion, when set, is the Secrets' version instead of a hash
	// of their content; the caller guarantees that other content gets
	// another version. The control plane sets the trust bundle's version,
	// so that the Secret version a node acknowledged names the bundle it
	// holds (meshca.SameVersion).
	SecretsVersion string
}

// Server is an xDS management server holding one snapshot per node. Create
// it with New; it must not be copied.
type Server struct {
	opts Options
	log  *slog.Logger
	xds  serverv3.Server
	// proxies is an ADS-mode cache (for Envoy-style clients); proxyless is
	// the cache answering named requests with subsets (for grpc-go). Both
	// hold every snapshot; a request goes to one by its node's metadata.
	proxies, proxyless cache.SnapshotCache

	snapMu sync.Mutex
	snaps  map[string]*nodeSnap

	mu       sync.Mutex // guards streams and nodes
	streams  map[int64]*streamState
	nodes    map[string]*nodeState
	notifyMu sync.Mutex // serialises OnStatus calls
}

// nodeSnap is the configuration of one node. mu serialises SetResources
// calls for the node.
type nodeSnap struct {
	mu sync.Mutex
	// target is the snapshot of the latest SetResources and versions its
	// per-type versions; snap is the one published, which also has the
	// clusters target drops until the node acknowledges target's routes
	// (retain.go).
	target, snap *cache.Snapshot
	versions     [numKinds]string
	lists        [numKinds][]types.Resource // target's resources
}

// New returns a Server configured by opts.
func New(opts Options) *Server {
	l := opts.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	l = l.With("component", "xds")
	s := &Server{
		opts:    opts,
		log:     l,
		snaps:   map[string]*nodeSnap{},
		streams: map[int64]*streamState{},
		nodes:   map[string]*nodeState{},
	}
	s.proxies = cache.NewSnapshotCache(true, cache.IDHash{}, slogAdapter{l})
	s.proxyless = cache.NewSnapshotCache(false, cache.IDHash{}, slogAdapter{l})
	mux := &cache.MuxCache{
		Classify: func(r *cache.Request) string { return cacheKey(r.GetNode()) },
		ClassifyDelta: func(r *cache.DeltaRequest) string {
			return cacheKey(r.GetNode())
		},
		Caches: map[string]cache.Cache{"proxy": s.proxies, "proxyless": s.proxyless},
	}
	s.xds = serverv3.NewServer(context.Background(), mux, s.callbacks(), sotw.WithOrderedADS(), sotw.WithLogger(slogAdapter{l}))
	return s
}

func cacheKey(n *corev3.Node) string {
	if n.GetMetadata().GetFields()[MetadataProxyless].GetBoolValue() {
		return "proxyless"
	}
	return "proxy"
}

// Register registers the aggregated discovery service (ADS, state of the
// world and delta) and the listener, route, cluster, endpoint and secret
// discovery services on g.
func (s *Server) Register(g *grpc.Server) {
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, s.xds)
	listenerservice.RegisterListenerDiscoveryServiceServer(g, s.xds)
	routeservice.RegisterRouteDiscoveryServiceServer(g, s.xds)
	clusterservice.RegisterClusterDiscoveryServiceServer(g, s.xds)
	endpointservice.RegisterEndpointDiscoveryServiceServer(g, s.xds)
	secretservice.RegisterSecretDiscoveryServiceServer(g, s.xds)
}

// SetResources makes r the configuration of the node with the given ID and
// pushes the resource types whose content changed to its open streams. It
// reports changed=false, and pushes nothing, when r has the content the
// node already has. r is refused whole, and nothing changes, when a
// resource has the wrong type, no name or a duplicate name, or when the
// snapshot is inconsistent (an EDS cluster without its
// ClusterLoadAssignment, a route configuration no listener names, a
// Secret a TLS context reads over ADS missing, ...).
// The resources must not be modified after the call.
func (s *Server) SetResources(nodeID string, r Resources) (changed bool, err error) {
	ns := s.lockNode(nodeID)
	defer ns.mu.Unlock()
	lists := r.byKind()
	var versions [numKinds]string
	var same [numKinds]bool
	for k := range numKinds {
		// The translator hands the same messages again for what did not
		// change: a list of the very messages of the current target has
		// its version.
		if ns.target != nil && samePointers(ns.lists[k], lists[k]) {
			versions[k], same[k] = ns.versions[k], true
			continue
		}
		if versions[k], err = version(k, lists[k]); err != nil {
			if ns.target == nil {
				s.dropEmpty(nodeID, ns)
			}
			return false, err
		}
	}
	if r.SecretsVersion != "" && len(lists[kindSecret]) > 0 {
		versions[kindSecret] = r.SecretsVersion
	}
	if ns.target != nil && ns.versions == versions {
		return false, nil
	}
	if err := consistent(r, same); err != nil {
		if ns.target == nil {
			s.dropEmpty(nodeID, ns)
		}
		return false, err
	}
	target := new(cache.Snapshot)
	for k := range numKinds {
		// Unchanged types get the new lists too (same content, same
		// version, so nothing is sent again): keeping the old ones would
		// keep alive every generation of the caller's resources that a
		// node ever received.
		rt := cache.GetResponseType(typeURLs[k])
		target.Resources[rt] = cache.NewResources(versions[k], lists[k])
	}
	if err := s.publish(nodeID, ns, target, versions); err != nil {
		return false, err
	}
	ns.lists = lists
	return true, nil
}

// samePointers reports whether a and b list the same messages (not just
// equal ones) in the same order.
func samePointers(a, b []types.Resource) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// lockNode returns the node's entry, created if needed, with its mutex
// held. It retries when Clear removed the entry while it waited for the
// mutex, so a snapshot is never set for a forgotten entry.
func (s *Server) lockNode(nodeID string) *nodeSnap {
	for {
		s.snapMu.Lock()
		ns := s.snaps[nodeID]
		if ns == nil {
			ns = &nodeSnap{}
			s.snaps[nodeID] = ns
		}
		s.snapMu.Unlock()
		ns.mu.Lock()
		s.snapMu.Lock()
		current := s.snaps[nodeID] == ns
		s.snapMu.Unlock()
		if current {
			return ns
		}
		ns.mu.Unlock()
	}
}

// dropEmpty forgets a node entry that SetResources created but never
// filled. ns.mu is held.
func (s *Server) dropEmpty(nodeID string, ns *nodeSnap) {
	s.snapMu.Lock()
	if s.snaps[nodeID] == ns {
		delete(s.snaps, nodeID)
	}
	s.snapMu.Unlock()
}

// Clear forgets the node's resources: its open streams receive nothing more
// (the node keeps its last configuration) until the next SetResources. The
// node's status is forgotten too unless it has a stream open.
func (s *Server) Clear(nodeID string) {
	s.snapMu.Lock()
	ns := s.snaps[nodeID]
	delete(s.snaps, nodeID)
	s.snapMu.Unlock()
	if ns != nil {
		// Wait for a SetResources in flight, so it cannot re-add the
		// snapshot to the caches after they were cleared.
		ns.mu.Lock()
		ns.snap, ns.target, ns.lists = nil, nil, [numKinds][]types.Resource{}
		ns.mu.Unlock()
	}
	s.proxies.ClearSnapshot(nodeID)
	s.proxyless.ClearSnapshot(nodeID)

	s.mu.Lock()
	if n, ok := s.nodes[nodeID]; ok && len(n.streams) == 0 {
		delete(s.nodes, nodeID)
	}
	s.mu.Unlock()
}

func (s *Server) hasSnapshot(nodeID string) bool {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	ns, ok := s.snaps[nodeID]
	return ok && ns != nil
}

// Nodes returns the IDs of the known nodes, sorted: those with resources
// and those with a tracked status.
func (s *Server) Nodes() []string {
	s.snapMu.Lock()
	ids := make([]string, 0, len(s.snaps))
	for id := range s.snaps {
		ids = append(ids, id)
	}
	s.snapMu.Unlock()
	s.mu.Lock()
	for id := range s.nodes {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	slices.Sort(ids)
	return slices.Compact(ids)
}
