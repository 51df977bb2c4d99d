package control

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
	"github.com/trellis-mesh/trellis/internal/store"
	"github.com/trellis-mesh/trellis/internal/store/bolt"
)

const replica = "replica-1"

// start runs a control plane over a fresh bbolt store on 127.0.0.1:0 and
// stops it at cleanup, checking that Run returned nil.
func start(t *testing.T, grace time.Duration) *Control {
	t.Helper()
	s, err := bolt.Open(filepath.Join(t.TempDir(), "trellis.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c, _ := startOn(t, s, replica, grace)
	return c
}

// startOn runs a control plane named name over s until cleanup or until
// the returned stop is called; stop and cleanup check that Run returned nil.
func startOn(t *testing.T, s store.Store, name string, grace time.Duration) (c *Control, stop func()) {
	t.Helper()
	c, err := New(Options{Store: s, APIAddr: "127.0.0.1:0", XDSAddr: "127.0.0.1:0", Token: "tok", Name: name, DisconnectGrace: grace})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s: Run: %v", name, err)
				}
			case <-time.After(waitTimeout):
				t.Errorf("%s: Run did not return %s after its context ended", name, waitTimeout)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case <-c.Ready():
	case <-time.After(waitTimeout):
		t.Fatalf("%s not ready", name)
	}
	return c, stop
}

func (c *Control) xdsAddr() string { _, x := c.Addrs(); return x }

// applyDocs applies docs and waits for the reconciler to have seen them.
func applyDocs(t *testing.T, c *Control, docs string) {
	t.Helper()
	if _, err := c.mgr.Apply(context.Background(), strings.NewReader(docs)); err != nil {
		t.Fatalf("apply: %v", err)
	}
	caughtUp(t, c)
}

// base is two services with one applied instance each, x and w, each with
// an HTTPRoute, and the services of the two proxies a-1 and b-1.
const base = `apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: x}
spec: {selector: {app: x}, ports: [{port: 80, protocol: http}]}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: w}
spec: {selector: {app: w}, ports: [{port: 80, protocol: http}]}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: a}
spec: {selector: {app: a}, ports: [{port: 80, protocol: http}]}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: b}
spec: {selector: {app: b}, ports: [{port: 80, protocol: http}]}
---
apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: x-1, labels: {app: x}}
spec: {address: 127.0.0.11, inbound: [{port: 10080, servicePort: 80, appPort: 8080}]}
---
apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: w-1, labels: {app: w}}
spec: {address: 127.0.0.21, inbound: [{port: 10080, servicePort: 80, appPort: 8080}]}
` + routeX + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: w-route}
spec:
  parentRefs: [{group: "", kind: Service, name: w}]
  rules:
  - backendRefs: [{name: w, port: 80}]
`

// routeX is x's route; routeXTimeout changes it.
const routeX = `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: x-route}
spec:
  parentRefs: [{group: "", kind: Service, name: x}]
  rules:
  - backendRefs: [{name: x, port: 80}]
`

func routeXTimeout(d string) string {
	return routeX + "    timeouts: {request: " + d + "}\n"
}

// Proxies a-1 (calls x) and b-1 (calls w).
const (
	dpA = `apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: a-1, labels: {app: a}}
spec:
  address: 127.0.0.1
  inbound: [{port: 10001, servicePort: 80, appPort: 8001}]
  outbound: [{service: x, localPort: 15001}]
`
	dpB = `apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: b-1, labels: {app: b}}
spec:
  address: 127.0.0.2
  inbound: [{port: 10002, servicePort: 80, appPort: 8002}]
  outbound: [{service: w, localPort: 15002}]
`
	// dpX is a second instance of x behind a proxy.
	dpX = `apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: x-2, labels: {app: x}}
spec:
  address: 127.0.0.12
  inbound: [{port: 10080, servicePort: 80, appPort: 8080}]
`
)

// stored reads a Dataplane as the API shows it.
func stored(t *testing.T, c *Control, ns, name string) *v1alpha1.Dataplane {
	t.Helper()
	obj, err := c.mgr.Get(context.Background(), store.Key{Kind: "Dataplane", Namespace: ns, Name: name})
	if err != nil {
		t.Fatalf("get Dataplane %s/%s: %v", ns, name, err)
	}
	return obj.(*v1alpha1.Dataplane)
}

func condition(dp *v1alpha1.Dataplane, typ string) *metav1.Condition {
	for i := range dp.Status.Conditions {
		if dp.Status.Conditions[i].Type == typ {
			return &dp.Status.Conditions[i]
		}
	}
	return nil
}

func conditionIs(t *testing.T, c *Control, name, typ string, want metav1.ConditionStatus) func() bool {
	return func() bool {
		obj, err := c.mgr.Get(context.Background(), store.Key{Kind: "Dataplane", Namespace: "default", Name: name})
		if errors.Is(err, store.ErrNotFound) {
			return false // not registered yet
		}
		if err != nil {
			t.Fatal(err)
		}
		cond := condition(obj.(*v1alpha1.Dataplane), typ)
		return cond != nil && cond.Status == want
	}
}

// synced waits until the client has its clusters, listeners, load
// assignments and route configurations.
func synced(t *testing.T, cl *adsClient) {
	t.Helper()
	waitFor(t, cl.node.GetId()+" to receive CDS, LDS, EDS and RDS", func() bool {
		for _, typ := range []string{resource.ClusterType, resource.ListenerType, resource.EndpointType, resource.RouteType} {
			if cl.version(typ) == "" {
				return false
			}
		}
		return true
	})
}

// caughtUp waits until the reconciler has seen every write to the store,
// so that what follows is the only change it has to process.
func caughtUp(t *testing.T, c *Control) {
	t.Helper()
	waitFor(t, "the reconciler to catch up with the store", func() bool {
		list, _, err := c.store.List(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		c.rec.mu.Lock()
		defer c.rec.mu.Unlock()
		n := 0
		for _, res := range list {
			if _, ok := v1alpha1.LookupKind(res.Kind); !ok {
				continue // the control plane's own records (replica heartbeats)
			}
			n++
			o, ok := c.rec.objs[res.Key]
			if !ok || o.GetResourceVersion() != strconv.FormatInt(res.Revision, 10) {
				return false
			}
		}
		return n == len(c.rec.objs)
	})
}

func TestRegistrationAndScoping(t *testing.T) {
	c := start(t, time.Minute)
	applyDocs(t, c, base)
	a := connect(t, c.xdsAddr(), dataplaneNode(t, "default/a-1", "default", dpA), true)
	b := connect(t, c.xdsAddr(), dataplaneNode(t, "default/b-1", "default", dpB), true)

	// (a) Registration: stored, connected to this replica, Ready.
	waitFor(t, "a-1 to be Ready", conditionIs(t, c, "a-1", ConditionReady, metav1.ConditionTrue))
	dp := stored(t, c, "default", "a-1")
	if !dp.Status.Connected || dp.Status.ControlPlane != replica || dp.Status.LastSeen == nil {
		t.Errorf("a-1 status %+v: want connected to %s with lastSeen", dp.Status, replica)
	}
	if len(dp.Spec.Outbound) != 1 || dp.Spec.Outbound[0].Service != "x" {
		t.Errorf("a-1 stored spec %+v, want the one from its node metadata", dp.Spec)
	}

	// (b) Each proxy gets its own outbound service only.
	synced(t, a)
	synced(t, b)
	for _, tc := range []struct {
		cl        *adsClient
		has, lack string
	}{{a, "x", "w"}, {b, "w", "x"}} {
		cluster := "default/" + tc.has + ":80"
		if got := tc.cl.resources(resource.ClusterType); !slices.Contains(got, cluster) || slices.Contains(got, "default/"+tc.lack+":80") {
			t.Errorf("%s clusters %v: want %s, not %s", tc.cl.node.GetId(), got, cluster, tc.lack)
		}
		if got := tc.cl.resources(resource.RouteType); !slices.Contains(got, "outbound:"+cluster) {
			t.Errorf("%s route configurations %v: want outbound:%s", tc.cl.node.GetId(), got, cluster)
		}
		if got := tc.cl.resources(resource.ListenerType); len(got) < 2 {
			t.Errorf("%s listeners %v: want an inbound and an outbound", tc.cl.node.GetId(), got)
		}
	}
	if got := a.endpoints("default/x:80"); !slices.Equal(got, []string{"127.0.0.11:10080"}) {
		t.Errorf("a-1 endpoints of x: %v", got)
	}

	// (c) A change to x's route reaches a-1 only: b-1 is not even
	// re-translated, and receives no response.
	caughtUp(t, c)
	c.rec.mu.Lock()
	bRes := c.rec.nodes["default/b-1"].res
	c.rec.mu.Unlock()
	bRDS, bCDS := b.responses(resource.RouteType), b.responses(resource.ClusterType)
	aVersion := a.version(resource.RouteType)
	applyDocs(t, c, routeXTimeout("3s"))
	waitFor(t, "a-1 to receive x's new route", func() bool { return a.version(resource.RouteType) != aVersion })
	c.rec.mu.Lock()
	same := c.rec.nodes["default/b-1"].res == bRes
	c.rec.mu.Unlock()
	if !same {
		t.Error("b-1 was re-translated for a route it does not read")
	}
	// A response to b-1 would have been sent together with a-1's; give a
	// stray one 200 ms to show.
	window := time.After(200 * time.Millisecond)
	for done := false; !done; {
		select {
		case <-window:
			done = true
		default:
			if b.responses(resource.RouteType) != bRDS || b.responses(resource.ClusterType) != bCDS {
				t.Fatalf("b-1 received a response for x's route change")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	st, _ := c.xds.Status("default/b-1")
	if v := st.Types[resource.RouteType]; v.SentVersion != b.version(resource.RouteType) || v.AckedVersion != v.SentVersion {
		t.Errorf("b-1 xDS status %+v, want its one RDS version sent and acked", v)
	}
}

func TestDisconnectGrace(t *testing.T) {
	const grace = 300 * time.Millisecond
	c := start(t, grace)
	applyDocs(t, c, base)
	a := connect(t, c.xdsAddr(), dataplaneNode(t, "default/a-1", "default", dpA), true)
	synced(t, a)
	x := connect(t, c.xdsAddr(), dataplaneNode(t, "default/x-2", "default", dpX), true)
	both := []string{"127.0.0.11:10080", "127.0.0.12:10080"}
	waitFor(t, "a-1 to see x-2's endpoint", func() bool { return slices.Equal(a.endpoints("default/x:80"), both) })

	x.close()
	closed := time.Now()
	waitFor(t, "x-2 to turn not Ready", conditionIs(t, c, "x-2", ConditionReady, metav1.ConditionFalse))
	if d := time.Since(closed); d < grace {
		t.Errorf("x-2 marked gone %s after its stream closed, before the %s grace", d, grace)
	}
	dp := stored(t, c, "default", "x-2")
	if dp.Status.Connected {
		t.Errorf("x-2 status %+v: still connected", dp.Status)
	}
	waitFor(t, "x-2's endpoint to leave a-1's EDS", func() bool {
		return slices.Equal(a.endpoints("default/x:80"), []string{"127.0.0.11:10080"})
	})

	connect(t, c.xdsAddr(), dataplaneNode(t, "default/x-2", "default", dpX), true)
	waitFor(t, "x-2 to be Ready again", conditionIs(t, c, "x-2", ConditionReady, metav1.ConditionTrue))
	waitFor(t, "x-2's endpoint to come back", func() bool { return slices.Equal(a.endpoints("default/x:80"), both) })
}

func TestReconnectWithinGrace(t *testing.T) {
	c := start(t, time.Minute)
	applyDocs(t, c, base)
	x := connect(t, c.xdsAddr(), dataplaneNode(t, "default/x-2", "default", dpX), true)
	synced(t, x)
	x.close()
	waitFor(t, "the stream to be gone", func() bool { st, _ := c.xds.Status("default/x-2"); return !st.Connected })
	x = connect(t, c.xdsAddr(), dataplaneNode(t, "default/x-2", "default", dpX), true)
	synced(t, x)
	dp := stored(t, c, "default", "x-2")
	if cond := condition(dp, ConditionReady); cond == nil || cond.Status != metav1.ConditionTrue {
		t.Errorf("Ready %+v after a reconnect within the grace period", cond)
	}
	if dp.Generation != 1 {
		t.Errorf("generation %d after a reconnect with the same Dataplane, want 1 (no spec write)", dp.Generation)
	}
}

func TestMeshIsolation(t *testing.T) {
	c := start(t, time.Minute)
	applyDocs(t, c, base+`---
apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata: {name: other}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: z, namespace: default, labels: {trellis.dev/mesh: other}}
spec: {selector: {app: z}, ports: [{port: 80, protocol: http}]}
`)
	o := connect(t, c.xdsAddr(), dataplaneNode(t, "default/o-1", "other", `apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: o-1, labels: {app: o, trellis.dev/mesh: other}}
spec:
  address: 127.0.0.3
  inbound: [{port: 10003, appPort: 8003}]
  outbound: [{service: z, localPort: 15003}, {service: x, localPort: 15004}]
  outboundHTTPPort: 15000
`), true)
	waitFor(t, "o-1's clusters", func() bool { return slices.Contains(o.resources(resource.ClusterType), "default/z:80") })
	for _, name := range o.resources(resource.ClusterType) {
		if strings.HasPrefix(name, "default/") && name != "default/z:80" {
			t.Errorf("o-1 of mesh other received cluster %s of mesh default", name)
		}
	}
	if dp := stored(t, c, "default", "o-1"); v1alpha1.MeshOf(dp) != "other" || !dp.Status.Connected {
		t.Errorf("o-1: mesh %s connected %v", v1alpha1.MeshOf(dp), dp.Status.Connected)
	}
}

func TestProxyless(t *testing.T) {
	c := start(t, time.Minute)
	applyDocs(t, c, base)
	p := connect(t, c.xdsAddr(), proxylessNode(t, "proxyless/client", "default"), false)
	p.request(resource.ListenerType, "x")
	waitFor(t, "the API listener for x", func() bool { return slices.Equal(p.resources(resource.ListenerType), []string{"x"}) })
	p.request(resource.RouteType, "outbound:default/x:80")
	waitFor(t, "x's route configuration", func() bool {
		return slices.Equal(p.resources(resource.RouteType), []string{"outbound:default/x:80"})
	})
	if _, err := c.mgr.Get(context.Background(), store.Key{Kind: "Dataplane", Namespace: "proxyless", Name: "client"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a proxyless client was registered as a Dataplane: %v", err)
	}
}

func TestGracefulStop(t *testing.T) {
	s, err := bolt.Open(filepath.Join(t.TempDir(), "trellis.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := New(Options{Store: s, APIAddr: "127.0.0.1:0", XDSAddr: "127.0.0.1:0", Name: replica})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	<-c.Ready()
	applyDocs(t, c, base)
	a := connect(t, c.xdsAddr(), dataplaneNode(t, "default/a-1", "default", dpA), true)
	synced(t, a)

	cancel()
	const bound = 3 * time.Second
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(bound):
		t.Fatalf("Run did not return within %s of its context ending, with a stream open", bound)
	}
	// Every stream handler has finished: the server saw the stream close,
	// and nothing touches the store the caller is about to close.
	if st, _ := c.xds.Status("default/a-1"); st.Connected || st.Streams != 0 {
		t.Errorf("after Run returned, the xDS server still counts %d open streams of a-1", st.Streams)
	}
	select {
	case <-a.done:
	case <-time.After(bound):
		t.Fatal("the proxy's stream stayed open after Run returned")
	}
}

func TestRegistrationRefusals(t *testing.T) {
	c := start(t, time.Minute)
	applyDocs(t, c, base)

	// A node whose id is not its Dataplane's gets nothing and registers
	// nothing.
	bad := connect(t, c.xdsAddr(), dataplaneNode(t, "default/impostor", "default", dpA), true)
	// An invalid Dataplane likewise.
	invalid := connect(t, c.xdsAddr(), dataplaneNode(t, "default/bad-1", "default", `apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: bad-1}
spec: {address: 127.0.0.1, inbound: [{port: 99999, appPort: 8000}]}
`), true)
	// A good one, to know when the others have had their chance.
	good := connect(t, c.xdsAddr(), dataplaneNode(t, "default/a-1", "default", dpA), true)
	synced(t, good)
	waitFor(t, "both refused nodes to be known to the xDS server", func() bool {
		s1, _ := c.xds.Status("default/impostor")
		s2, _ := c.xds.Status("default/bad-1")
		return s1.Connected && s2.Connected
	})
	caughtUp(t, c)
	for _, key := range []store.Key{{Kind: "Dataplane", Namespace: "default", Name: "impostor"}, {Kind: "Dataplane", Namespace: "default", Name: "bad-1"}} {
		if _, err := c.store.Get(context.Background(), key); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: %v, want it not registered", key, err)
		}
	}
	if bad.responses(resource.ClusterType)+invalid.responses(resource.ClusterType) != 0 {
		t.Errorf("a refused node received configuration")
	}
}

func TestRegistrationFromStore(t *testing.T) {
	c := start(t, time.Minute)
	// x-1 is applied by hand; its proxy sends no Dataplane, only its id.
	applyDocs(t, c, base)
	x := connect(t, c.xdsAddr(), &corev3.Node{Id: "default/x-1", Cluster: "default"}, true)
	waitFor(t, "x-1 to be Ready", conditionIs(t, c, "x-1", ConditionReady, metav1.ConditionTrue))
	waitFor(t, "x-1's inbound listener", func() bool {
		return slices.Contains(x.resources(resource.ListenerType), "inbound:127.0.0.11:10080")
	})
	if dp := stored(t, c, "default", "x-1"); dp.Spec.Address != "127.0.0.11" || !dp.Status.Connected {
		t.Errorf("x-1: %+v", dp)
	}
}

func TestProxylessMeshIsolation(t *testing.T) {
	c := start(t, time.Minute)
	applyDocs(t, c, base+`---
apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata: {name: other}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: z, labels: {trellis.dev/mesh: other}}
spec: {selector: {app: z}, ports: [{port: 80, protocol: http}]}
`)
	p := connect(t, c.xdsAddr(), proxylessNode(t, "proxyless/other-client", "other"), false)
	p.request(resource.ListenerType, "z", "x")
	waitFor(t, "the API listener for z", func() bool { return slices.Contains(p.resources(resource.ListenerType), "z") })
	if got := p.resources(resource.ListenerType); slices.Contains(got, "x") {
		t.Errorf("a proxyless client of mesh other received x of mesh default: %v", got)
	}
}

// TestLateDisconnect: the xDS server reports a node's last stream closed
// outside its lock, so a new stream of the node may already be served when
// the report arrives. The late report must not stop the new stream's
// configuration.
func TestLateDisconnect(t *testing.T) {
	c := start(t, time.Minute)
	applyDocs(t, c, base)
	node := dataplaneNode(t, "default/a-1", "default", dpA)
	a := connect(t, c.xdsAddr(), node, true)
	synced(t, a)

	c.reg.disconnect(node) // the old stream's report, arriving late

	v := a.version(resource.RouteType)
	applyDocs(t, c, routeXTimeout("3s"))
	waitFor(t, "a-1 to still receive x's route changes", func() bool { return a.version(resource.RouteType) != v })
}
