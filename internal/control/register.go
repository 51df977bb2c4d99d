package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
	"github.com/trellis-mesh/trellis/internal/control/translator"
	"github.com/trellis-mesh/trellis/internal/control/xdsserver"
	"github.com/trellis-mesh/trellis/internal/store"
)

// Node metadata keys a proxy sends (see docs/proxy-xds.md).
const (
	metaDataplane = "trellis.dev/dataplane"
	metaProxyless = "trellis.dev/proxyless"
)

// ConditionReady is the Dataplane condition the control plane keeps: True
// while the proxy holds a stream, False once it has been gone for the grace
// period (its endpoints then leave every load assignment).
const ConditionReady = "Ready"

// ConditionXDSAccepted is False while the proxy rejects its configuration.
const ConditionXDSAccepted = "XDSAccepted"

// registrar turns xDS stream events into Dataplane registrations and status.
type registrar struct {
	c *Control

	mu      sync.Mutex
	nacks   map[string][]v1alpha1.XDSTypeStatus // per node: the rejections last recorded
	readied map[string]bool                     // nodes marked Ready on this connection
}

func (g *registrar) remember(id string, nacks []v1alpha1.XDSTypeStatus) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.nacks == nil {
		g.nacks = map[string][]v1alpha1.XDSTypeStatus{}
	}
	g.nacks[id] = nacks
}

func (g *registrar) forget(id string) {
	g.mu.Lock()
	delete(g.nacks, id)
	delete(g.readied, id)
	g.mu.Unlock()
}

// connect registers the node's Dataplane (from its metadata, or one applied
// earlier under the node's id) and serves its first snapshot.
func (g *registrar) connect(ctx context.Context, node *corev3.Node) {
	c := g.c
	id := node.GetId()
	log := c.log.With("node", id)
	fields := node.GetMetadata().GetFields()
	if fields[metaProxyless].GetBoolValue() {
		mesh := node.GetCluster()
		if mesh == "" {
			mesh = v1alpha1.DefaultMesh
		}
		log.Info("proxyless client connected", "mesh", mesh)
		c.rec.addNode(id, translator.Proxy{Mesh: mesh, Proxyless: true, NodeID: id})
		return
	}
	dp, err := g.dataplane(ctx, node)
	if err != nil {
		log.Error("proxy connected without a usable Dataplane; it gets no configuration", "error", err)
		return
	}
	dp, err = g.markConnected(ctx, dp)
	if err != nil {
		log.Error("registering the Dataplane failed", "error", err)
		return
	}
	log.Info("proxy connected", "mesh", v1alpha1.MeshOf(dp), "address", dp.Spec.Address)
	c.rec.addNode(id, translator.Proxy{Mesh: v1alpha1.MeshOf(dp), Dataplane: dp, NodeID: id})
}

// dataplane returns the node's Dataplane, from its metadata when it sent
// one, else the stored one named by its id ("namespace/name").
func (g *registrar) dataplane(ctx context.Context, node *corev3.Node) (*v1alpha1.Dataplane, error) {
	if doc := node.GetMetadata().GetFields()[metaDataplane]; doc != nil {
		data, err := json.Marshal(doc.AsInterface())
		if err != nil {
			return nil, err
		}
		obj, err := v1alpha1.Decode(data)
		if err != nil {
			return nil, fmt.Errorf("node metadata %s: %w", metaDataplane, err)
		}
		dp, ok := obj.(*v1alpha1.Dataplane)
		if !ok {
			return nil, fmt.Errorf("node metadata %s: kind %s, want Dataplane", metaDataplane, v1alpha1.KindOf(obj))
		}
		v1alpha1.Default(dp)
		if errs := v1alpha1.Validate(dp); len(errs) > 0 {
			return nil, fmt.Errorf("node metadata %s: %w", metaDataplane, errs.ToAggregate())
		}
		if want := v1alpha1.NamespaceOf(dp) + "/" + dp.Name; want != node.GetId() {
			return nil, fmt.Errorf("node id %q does not match the Dataplane %q it sent", node.GetId(), want)
		}
		return dp, nil
	}
	ns, name, ok := splitID(node.GetId())
	if !ok {
		return nil, fmt.Errorf("node id %q is not namespace/name and the node sent no %s metadata", node.GetId(), metaDataplane)
	}
	return g.stored(ctx, ns, name)
}

// stored reads a Dataplane straight from the store: registration and
// status need the stored document, not the conditions the manager
// computes over every resource for readers.
func (g *registrar) stored(ctx context.Context, ns, name string) (*v1alpha1.Dataplane, error) {
	res, err := g.c.store.Get(ctx, store.Key{Kind: "Dataplane", Namespace: ns, Name: name})
	if err != nil {
		return nil, err
	}
	obj, err := v1alpha1.Decode(res.Value)
	if err != nil {
		return nil, fmt.Errorf("%s: stored document is unreadable: %w", res.Key, err)
	}
	dp, ok := obj.(*v1alpha1.Dataplane)
	if !ok {
		return nil, fmt.Errorf("%s: stored document is a %s", res.Key, v1alpha1.KindOf(obj))
	}
	return dp, nil
}

func splitID(id string) (ns, name string, ok bool) {
	for i := 0; i < len(id); i++ {
		if id[i] == '/' {
			return id[:i], id[i+1:], i > 0 && i < len(id)-1
		}
	}
	return "", "", false
}

// markConnected writes dp with Connected status, keeping what the user or an
// earlier registration stored under its name.
func (g *registrar) markConnected(ctx context.Context, dp *v1alpha1.Dataplane) (*v1alpha1.Dataplane, error) {
	now := metav1.NewTime(g.c.now().UTC().Truncate(time.Second))
	if _, err := g.c.mgr.Put(ctx, dp); err != nil {
		return nil, err
	}
	return g.updateStatus(ctx, dp, func(st *v1alpha1.DataplaneStatus) {
		st.Connected = true
		st.ControlPlane = g.c.opts.Name
		st.LastSeen = &now
		// A proxy that was serving (it reconnects after a control-plane
		// restart or failover) stays Ready. A new one becomes Ready, and an
		// endpoint of its Services, only once it has accepted its
		// listeners (ready below): a proxy still waiting for its
		// certificate, or rejecting its configuration, serves nothing.
		if c := findCondition(st.Conditions, ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
			setCondition(&st.Conditions, metav1.Condition{
				Type: ConditionReady, Status: metav1.ConditionFalse, Reason: "Configuring",
				Message: "the proxy holds an xDS stream to " + g.c.opts.Name + " and has not accepted its listeners yet", LastTransitionTime: now,
			})
		}
	})
}

// ready marks a connected proxy Ready once it has acknowledged its
// listeners (an mTLS sidecar does so only when it has its certificate).
// Called from status; remembers the nodes marked so ACKs stay cheap.
func (g *registrar) ready(ctx context.Context, id, ns, name string, st xdsserver.NodeStatus) {
	if st.Types[resource.ListenerType].AckedVersion == "" {
		return
	}
	g.mu.Lock()
	done := g.readied[id]
	g.mu.Unlock()
	if done {
		return
	}
	dp, err := g.stored(ctx, ns, name)
	if err != nil {
		return
	}
	me := g.c.opts.Name
	if c := findCondition(dp.Status.Conditions, ConditionReady); dp.Status.Connected && dp.Status.ControlPlane == me && (c == nil || c.Status != metav1.ConditionTrue) {
		now := metav1.NewTime(g.c.now().UTC().Truncate(time.Second))
		if _, err := g.updateStatus(ctx, dp, func(s *v1alpha1.DataplaneStatus) {
			if s.ControlPlane != me {
				return
			}
			setCondition(&s.Conditions, metav1.Condition{
				Type: ConditionReady, Status: metav1.ConditionTrue, Reason: "Connected",
				Message: "the proxy holds an xDS stream to " + me + " and serves its configuration", LastTransitionTime: now,
			})
		}); err != nil {
			g.c.log.Error("marking a Dataplane ready failed", "node", id, "error", err)
			return
		}
	}
	g.mu.Lock()
	if g.readied == nil {
		g.readied = map[string]bool{}
	}
	g.readied[id] = true
	g.mu.Unlock()
}

func findCondition(conds []metav1.Condition, typ string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}

// disconnect starts the grace period of a node whose stream closed; when it
// ends with the node still away, its Dataplane is marked not ready so its
// endpoints leave every proxy's load assignments.
func (g *registrar) disconnect(node *corev3.Node) {
	c := g.c
	id := node.GetId()
	if !c.rec.removeNode(id) {
		return // it is back already
	}
	g.forget(id)
	if node.GetMetadata().GetFields()[metaProxyless].GetBoolValue() {
		return
	}
	ns, name, ok := splitID(id)
	if !ok {
		return
	}
	c.log.Info("proxy disconnected", "node", id, "grace", c.opts.DisconnectGrace)
	c.live.away(ns + "/" + name)
}

// markGone marks a Dataplane not ready, unless it is no longer connected
// through owner (it moved to another replica, or was marked already).
func (g *registrar) markGone(ctx context.Context, ns, name, owner string) error {
	c := g.c
	dp, err := g.stored(ctx, ns, name)
	if err != nil {
		return err
	}
	if dp.Status.ControlPlane != owner || !dp.Status.Connected {
		return nil
	}
	now := metav1.NewTime(c.now().UTC().Truncate(time.Second))
	_, err = g.updateStatus(ctx, dp, func(st *v1alpha1.DataplaneStatus) {
		if st.ControlPlane != owner {
			return
		}
		st.Connected = false
		setCondition(&st.Conditions, metav1.Condition{
			Type: ConditionReady, Status: metav1.ConditionFalse, Reason: "Disconnected",
			Message: "the proxy has had no xDS stream for " + c.opts.DisconnectGrace.String(), LastTransitionTime: now,
		})
	})
	if err != nil {
		return err
	}
	c.log.Info("proxy gone; its endpoints are withdrawn", "node", ns+"/"+name, "was_connected_to", owner)
	return nil
}

// status records a proxy's rejection (or the end of one) in its Dataplane's
// status. ACKs are not written: they would cost a store write per push per
// proxy; `trellis describe` reads them from the replica serving the proxy.
func (g *registrar) status(id string, st xdsserver.NodeStatus) {
	c := g.c
	ns, name, ok := splitID(id)
	if !ok || c.ctx.Err() != nil || st.Node.GetMetadata().GetFields()[metaProxyless].GetBoolValue() {
		return // a proxyless client has no Dataplane to record in
	}
	var nacks []v1alpha1.XDSTypeStatus
	for url, ts := range st.Types {
		if ts.NackError != "" && ts.NackVersion != ts.AckedVersion {
			t := metav1.NewTime(ts.NackTime.UTC().Truncate(time.Second))
			nacks = append(nacks, v1alpha1.XDSTypeStatus{
				TypeURL: url, AckedVersion: ts.AckedVersion, NackVersion: ts.NackVersion, NackError: ts.NackError, NackTime: &t,
			})
		}
	}
	sortXDS(nacks)
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	g.ready(ctx, id, ns, name, st)
	// Most calls are ACKs that change nothing recorded: answer them from
	// memory, without reading the store.
	g.mu.Lock()
	last, seen := g.nacks[id]
	g.mu.Unlock()
	if seen && sameNacks(last, nacks) {
		return
	}
	dp, err := g.stored(ctx, ns, name)
	if errors.Is(err, store.ErrNotFound) {
		g.remember(id, nacks) // a refused node: read again only when its answers change
		return
	}
	if err != nil {
		return
	}
	if sameNacks(dp.Status.XDS, nacks) {
		g.remember(id, nacks)
		return
	}
	now := metav1.NewTime(c.now().UTC().Truncate(time.Second))
	_, err = g.updateStatus(ctx, dp, func(s *v1alpha1.DataplaneStatus) {
		s.XDS = nacks
		cond := metav1.Condition{Type: ConditionXDSAccepted, Status: metav1.ConditionTrue, Reason: "Accepted",
			Message: "the proxy accepted its configuration", LastTransitionTime: now}
		if len(nacks) > 0 {
			cond.Status, cond.Reason = metav1.ConditionFalse, "Rejected"
			cond.Message = "the proxy rejected " + nacks[0].TypeURL + " version " + nacks[0].NackVersion + ": " + nacks[0].NackError
		}
		setCondition(&s.Conditions, cond)
	})
	if err != nil {
		c.log.Error("recording a proxy's rejection failed", "node", id, "error", err)
		return
	}
	g.remember(id, nacks)
	if len(nacks) > 0 {
		c.log.Warn("proxy rejected its configuration and keeps its last good one", "node", id, "type", nacks[0].TypeURL, "error", nacks[0].NackError)
	}
}

// updateStatus applies mutate to the stored Dataplane's status with an
// optimistic-concurrency retry loop.
func (g *registrar) updateStatus(ctx context.Context, dp *v1alpha1.Dataplane, mutate func(*v1alpha1.DataplaneStatus)) (*v1alpha1.Dataplane, error) {
	key := dataplaneKey(dp)
	for attempt := 0; attempt < 5; attempt++ {
		cur, err := g.c.store.Get(ctx, key)
		if err != nil {
			return nil, err
		}
		obj, err := v1alpha1.Decode(cur.Value)
		if err != nil {
			return nil, err
		}
		stored := obj.(*v1alpha1.Dataplane)
		mutate(&stored.Status)
		data, err := v1alpha1.Encode(stored)
		if err != nil {
			return nil, err
		}
		if _, err := g.c.store.Update(ctx, key, data, cur.Revision); err != nil {
			if errors.Is(err, store.ErrConflict) {
				continue
			}
			return nil, err
		}
		return stored, nil
	}
	return nil, fmt.Errorf("%s: status update kept losing write races", key)
}

func setCondition(conds *[]metav1.Condition, c metav1.Condition) {
	for i := range *conds {
		if (*conds)[i].Type == c.Type {
			if (*conds)[i].Status == c.Status {
				c.LastTransitionTime = (*conds)[i].LastTransitionTime
			}
			(*conds)[i] = c
			return
		}
	}
	*conds = append(*conds, c)
}

func sortXDS(s []v1alpha1.XDSTypeStatus) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].TypeURL < s[j-1].TypeURL; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func sameNacks(a, b []v1alpha1.XDSTypeStatus) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].TypeURL != b[i].TypeURL || a[i].NackVersion != b[i].NackVersion || a[i].NackError != b[i].NackError {
			return false
		}
	}
	return true
}
