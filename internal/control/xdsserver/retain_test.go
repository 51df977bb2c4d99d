package xdsserver

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// twoClusters routes "mesh" by weight to clusters a and/or b.
func twoClusters(t *testing.T, wa, wb uint32) Resources {
	weights := map[string]uint32{}
	r := Resources{Listeners: []types.Resource{apiListener(t, "mesh", "mesh")}}
	for _, c := range []struct {
		name string
		w    uint32
	}{{"a", wa}, {"b", wb}} {
		if c.w == 0 {
			continue
		}
		weights[c.name] = c.w
		r.Clusters = append(r.Clusters, edsCluster(c.name, clusterv3.Cluster_ROUND_ROBIN))
		r.Endpoints = append(r.Endpoints, loadAssignment(c.name, "127.0.0.1:1000"))
	}
	r.Routes = []types.Resource{weightedRoute("mesh", weights)}
	return r
}

// TestDroppedClusterOutlivesRoutes checks make before break on a raw ADS
// stream: a snapshot dropping cluster a and routing away from it sends the
// routes first, and removes a only after the routes are acknowledged.
func TestDroppedClusterOutlivesRoutes(t *testing.T) {
	srv := New(Options{})
	c := newADSClient(t, dial(t, startServer(t, srv)), "default/web")
	if _, err := srv.SetResources("default/web", twoClusters(t, 50, 50)); err != nil {
		t.Fatal(err)
	}
	// Subscribe to everything and acknowledge it.
	c.send(resource.ClusterType, "", "", nil, "")
	c.ack(c.recv(), nil)
	c.send(resource.EndpointType, "", "", []string{"a", "b"}, "")
	c.ack(c.recv(), []string{"a", "b"})
	c.send(resource.ListenerType, "", "", nil, "")
	c.ack(c.recv(), nil)
	c.send(resource.RouteType, "", "", []string{"mesh"}, "")
	rds := c.recv()
	c.ack(rds, []string{"mesh"})
	waitFor(t, "route ACK", func() bool {
		st, _ := srv.Status("default/web")
		return st.Types[resource.RouteType].AckedVersion == rds.GetVersionInfo()
	})

	if _, err := srv.SetResources("default/web", twoClusters(t, 0, 100)); err != nil {
		t.Fatal(err)
	}
	// Clusters and endpoints keep a, so their content and version are
	// unchanged: the routes come first.
	r := c.recv()
	if r.GetTypeUrl() != resource.RouteType {
		t.Fatalf("first response after the shift: %s, want routes", r.GetTypeUrl())
	}
	c.ack(r, []string{"mesh"})
	// Now a goes.
	cds := c.recv()
	if cds.GetTypeUrl() != resource.ClusterType || len(cds.GetResources()) != 1 {
		t.Fatalf("after the route ACK: %s with %d resources, want clusters with b only", cds.GetTypeUrl(), len(cds.GetResources()))
	}
	c.ack(cds, nil)
	eds := c.recv()
	if eds.GetTypeUrl() != resource.EndpointType {
		t.Fatalf("got %s, want endpoints", eds.GetTypeUrl())
	}
	// The status reports the versions of the configuration as given.
	waitFor(t, "cluster ACK", func() bool {
		st, _ := srv.Status("default/web")
		return st.Types[resource.ClusterType].AckedVersion == cds.GetVersionInfo()
	})
	srv.snapMu.Lock()
	ns := srv.snaps["default/web"]
	srv.snapMu.Unlock()
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.snap != ns.target || ns.versions[kindCluster] != cds.GetVersionInfo() {
		t.Errorf("published snapshot is not the target one")
	}
}
