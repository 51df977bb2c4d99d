package xdsserver

import (
	"context"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// Make before break. A snapshot that drops a cluster usually also moves the
// routes away from it, and a client may apply the CDS update first (the
// ADS cache sends CDS before RDS; the proxyless cache in no set order):
// RPCs still routed to the dropped cluster then fail (grpc-go: "resource
// ... has been removed") until the routes arrive. So the server first
// publishes the new snapshot plus the dropped clusters and their
// ClusterLoadAssignments, and publishes the snapshot as given once every
// open stream of the node that receives listeners or routes has
// acknowledged the new ones (Envoy xDS protocol, "eventual consistency
// considerations"). A NACK of the new routes keeps the old clusters, which
// the client's old routes still use, until the next SetResources.

// publish sets target as the node's configuration, publishing it with the
// clusters of the current snapshot that target drops while the node's
// streams have not acknowledged target's listeners and routes. ns.mu is
// held.
func (s *Server) publish(nodeID string, ns *nodeSnap, target *cache.Snapshot, versions [numKinds]string) error {
	pub := target
	if ns.snap != nil && !s.routesAcked(nodeID, versions) {
		var err error
		if pub, err = withDropped(ns.snap, target); err != nil {
			return err
		}
	}
	if err := s.setSnapshot(nodeID, pub); err != nil {
		return err
	}
	ns.snap, ns.target, ns.versions = pub, target, versions
	return nil
}

// setSnapshot hands snap to both caches: which one serves the node depends
// on the metadata of its requests, which may not have arrived yet.
func (s *Server) setSnapshot(nodeID string, snap *cache.Snapshot) error {
	if err := s.proxies.SetSnapshot(context.Background(), nodeID, snap); err != nil {
		return err
	}
	return s.proxyless.SetSnapshot(context.Background(), nodeID, snap)
}

// finish publishes the node's target snapshot without the dropped clusters
// once its streams have acknowledged the target's listeners and routes.
// It is called after an ACK or NACK of listeners or routes and after a
// stream closes, without s.mu held. SetSnapshot only queues responses on
// buffered channels that have room for one response per watch, so calling
// it from a stream's callback does not block that stream.
func (s *Server) finish(nodeID string) {
	s.snapMu.Lock()
	ns := s.snaps[nodeID]
	s.snapMu.Unlock()
	if ns == nil {
		return
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.snap == nil || ns.snap == ns.target || !s.routesAcked(nodeID, ns.versions) {
		return
	}
	if err := s.setSnapshot(nodeID, ns.target); err != nil {
		s.log.Error("removing dropped clusters", "node", nodeID, "error", err)
		return
	}
	ns.snap = ns.target
	s.log.Debug("removed dropped clusters", "node", nodeID)
}

// routesAcked reports whether every open stream of the node that has been
// sent listeners or routes has acknowledged the versions given.
func (s *Server) routesAcked(nodeID string, versions [numKinds]string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[nodeID]
	if n == nil {
		return true
	}
	for st := range n.streams {
		for _, k := range []kind{kindListener, kindRoute} {
			typ := typeURLs[k]
			if _, sent := st.sent[typ]; sent && st.acked[typ] != versions[k] {
				return false
			}
		}
	}
	return true
}

// withDropped returns target plus the clusters of cur that target does not
// have, with their ClusterLoadAssignments from cur.
func withDropped(cur, target *cache.Snapshot) (*cache.Snapshot, error) {
	curClusters := cur.GetResources(resource.ClusterType)
	tClusters := target.GetResources(resource.ClusterType)
	curEDS := cur.GetResources(resource.EndpointType)
	tEDS := target.GetResources(resource.EndpointType)
	var dropped, droppedEDS []types.Resource
	for name, r := range curClusters {
		if _, ok := tClusters[name]; ok {
			continue
		}
		dropped = append(dropped, r)
		c := r.(*clusterv3.Cluster)
		if c.GetType() != clusterv3.Cluster_EDS {
			continue
		}
		eds := c.GetEdsClusterConfig().GetServiceName()
		if eds == "" {
			eds = c.GetName()
		}
		if _, ok := tEDS[eds]; !ok {
			if cla, ok := curEDS[eds]; ok {
				droppedEDS = append(droppedEDS, cla)
				tEDS[eds] = cla // a service name shared by two dropped clusters
			}
		}
	}
	if len(dropped) == 0 {
		return target, nil
	}
	pub := *target
	for _, add := range []struct {
		k     kind
		extra []types.Resource
	}{{kindCluster, dropped}, {kindEndpoint, droppedEDS}} {
		if len(add.extra) == 0 {
			continue
		}
		rt := cache.GetResponseType(typeURLs[add.k])
		list := add.extra
		for _, r := range target.Resources[rt].Items {
			list = append(list, r.Resource)
		}
		v, err := version(add.k, list)
		if err != nil {
			return nil, err
		}
		pub.Resources[rt] = cache.NewResources(v, list)
	}
	return &pub, nil
}
