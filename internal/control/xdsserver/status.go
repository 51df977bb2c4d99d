package xdsserver

import (
	"context"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// NodeStatus is what the server knows of one node's xDS streams.
type NodeStatus struct {
	// Connected reports whether the node has at least one open stream.
	Connected bool
	// Streams is the number of open streams (ADS or per type).
	Streams int
	// Node is the node as it described itself in its latest stream's first
	// request. It must not be modified.
	Node *corev3.Node
	// Types holds the state of each resource type sent to the node, keyed by
	// type URL (resource.ClusterType, ...).
	Types map[string]TypeStatus
}

// TypeStatus is the state of one resource type on one node.
type TypeStatus struct {
	// SentVersion is the version last sent to the node.
	SentVersion string
	// AckedVersion is the version the node last acknowledged: the one it is
	// using.
	AckedVersion string
	// NackVersion is the version the node rejected last, and NackError the
	// error it gave, as long as no ACK has followed; the node keeps using
	// AckedVersion. Both are empty when there is no outstanding rejection.
	NackVersion, NackError string
	// NackTime and AckTime are when the last NACK and ACK arrived.
	NackTime, AckTime time.Time
}

// Rejected reports whether the node's latest answer for this type was a
// NACK.
func (t TypeStatus) Rejected() bool { return t.NackVersion != "" }

// maxPending bounds the responses remembered per stream and type while they
// await an answer; a client that never answers makes the oldest ones drop.
const maxPending = 16

type sent struct{ nonce, version string }

// streamState is one open xDS stream.
type streamState struct {
	ctx     context.Context
	nodeID  string // "" until the first request
	pending map[string][]sent
	// sent and acked are the versions last sent and acknowledged on this
	// stream, by type URL.
	sent, acked map[string]string
}

// nodeState is the tracked state of one node.
type nodeState struct {
	node    *corev3.Node
	streams map[*streamState]struct{} // open streams
	types   map[string]*TypeStatus
}

func (n *nodeState) typ(typeURL string) *TypeStatus {
	t := n.types[typeURL]
	if t == nil {
		t = new(TypeStatus)
		n.types[typeURL] = t
	}
	return t
}

func (n *nodeState) status() NodeStatus {
	st := NodeStatus{
		Connected: len(n.streams) > 0,
		Streams:   len(n.streams),
		Node:      n.node,
		Types:     make(map[string]TypeStatus, len(n.types)),
	}
	for k, v := range n.types {
		st.Types[k] = *v
	}
	return st
}

// Status returns the node's status and whether the node is known: it has a
// stream open, had one since it was last cleared, or has resources.
func (s *Server) Status(nodeID string) (NodeStatus, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, ok := s.nodes[nodeID]; ok {
		return n.status(), true
	}
	if s.hasSnapshot(nodeID) {
		return NodeStatus{Types: map[string]TypeStatus{}}, true
	}
	return NodeStatus{}, false
}

// callbacks returns the go-control-plane callbacks that feed the status.
func (s *Server) callbacks() serverv3.Callbacks {
	return serverv3.CallbackFuncs{
		StreamOpenFunc:        s.open,
		DeltaStreamOpenFunc:   s.open,
		StreamClosedFunc:      s.closed,
		DeltaStreamClosedFunc: s.closed,
		StreamRequestFunc: func(id int64, req *discoveryv3.DiscoveryRequest) error {
			nacked, ok, err := s.request(id, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), req.GetErrorDetail().GetMessage(), req.GetErrorDetail() != nil)
			if ok {
				// The NACK carries the last version the client accepted,
				// which differs from the snapshot's: the cache would send
				// the rejected version straight back, and again on every
				// NACK. Present the rejected version as the client's, so
				// the watch waits for the next change of this type.
				req.VersionInfo = nacked
			}
			return err
		},
		StreamResponseFunc: func(_ context.Context, id int64, req *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
			s.response(id, resp.GetTypeUrl(), resp.GetNonce(), resp.GetVersionInfo())
		},
		StreamDeltaRequestFunc: func(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
			_, _, err := s.request(id, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), req.GetErrorDetail().GetMessage(), req.GetErrorDetail() != nil)
			return err
		},
		StreamDeltaResponseFunc: func(id int64, req *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
			s.response(id, resp.GetTypeUrl(), resp.GetNonce(), resp.GetSystemVersionInfo())
		},
	}
}

func (s *Server) open(ctx context.Context, id int64, _ string) error {
	s.mu.Lock()
	s.streams[id] = &streamState{ctx: ctx, pending: map[string][]sent{}, sent: map[string]string{}, acked: map[string]string{}}
	s.mu.Unlock()
	return nil
}

// request records a request. The first one binds the stream to its node
// (and connects the node when it is its first stream); one answering a
// response is an ACK or, with an error, a NACK. It returns the NACKed
// version and true for a NACK, and an error, which closes the stream, for
// a first request without a node ID.
func (s *Server) request(id int64, node *corev3.Node, typeURL, nonce, errMsg string, isNack bool) (string, bool, error) {
	s.mu.Lock()
	st := s.streams[id]
	if st == nil {
		s.mu.Unlock()
		return "", false, nil
	}
	var connected bool
	if st.nodeID == "" {
		if node.GetId() == "" {
			s.mu.Unlock()
			return "", false, status.Error(codes.InvalidArgument, "node.id: required in the first request of a stream")
		}
		st.nodeID = node.GetId()
		n := s.nodes[st.nodeID]
		if n == nil {
			n = &nodeState{types: map[string]*TypeStatus{}, streams: map[*streamState]struct{}{}}
			s.nodes[st.nodeID] = n
		}
		n.node = node
		n.streams[st] = struct{}{}
		connected = len(n.streams) == 1
	}
	nodeID := st.nodeID
	version, answered := st.answer(typeURL, nonce)
	if answered {
		t := s.nodes[nodeID].typ(typeURL)
		if isNack {
			t.NackVersion, t.NackError, t.NackTime = version, errMsg, time.Now()
		} else {
			t.AckedVersion, t.AckTime = version, time.Now()
			t.NackVersion, t.NackError = "", ""
			st.acked[typeURL] = version
		}
	}
	ctx := st.ctx
	s.mu.Unlock()

	if connected {
		s.log.Info("node connected", "node", nodeID)
		if s.opts.OnConnect != nil {
			s.opts.OnConnect(ctx, node)
		}
	}
	if answered && (typeURL == resource.ListenerType || typeURL == resource.RouteType) {
		s.finish(nodeID)
	}
	if connected || answered {
		if answered && isNack {
			s.log.Warn("node rejected configuration", "node", nodeID, "type", typeURL, "version", version, "error", errMsg)
		}
		s.notify(nodeID)
	}
	return version, answered && isNack, nil
}

// answer finds the response a request with nonce answers and forgets it
// and every older one. It returns the response's version.
func (st *streamState) answer(typeURL, nonce string) (string, bool) {
	if nonce == "" {
		return "", false
	}
	p := st.pending[typeURL]
	for i, r := range p {
		if r.nonce == nonce {
			st.pending[typeURL] = append(p[:0], p[i+1:]...)
			return r.version, true
		}
	}
	return "", false
}

func (s *Server) response(id int64, typeURL, nonce, version string) {
	s.mu.Lock()
	st := s.streams[id]
	if st == nil || st.nodeID == "" {
		s.mu.Unlock()
		return
	}
	p := st.pending[typeURL]
	if len(p) == maxPending {
		p = append(p[:0], p[1:]...)
	}
	st.pending[typeURL] = append(p, sent{nonce: nonce, version: version})
	st.sent[typeURL] = version
	s.nodes[st.nodeID].typ(typeURL).SentVersion = version
	nodeID := st.nodeID
	s.mu.Unlock()
	s.notify(nodeID)
}

func (s *Server) closed(id int64, _ *corev3.Node) {
	s.mu.Lock()
	st := s.streams[id]
	delete(s.streams, id)
	if st == nil || st.nodeID == "" {
		s.mu.Unlock()
		return
	}
	n := s.nodes[st.nodeID]
	delete(n.streams, st)
	last := len(n.streams) == 0
	node := n.node
	s.mu.Unlock()
	s.finish(st.nodeID)

	if last {
		s.log.Info("node disconnected", "node", st.nodeID)
		if s.opts.OnDisconnect != nil {
			s.opts.OnDisconnect(node)
		}
	}
	s.notify(st.nodeID)
}

// notify delivers the node's current status to OnStatus. Calls are
// serialised and each reads the status when it is delivered, so the last
// call a node gets carries its latest state even when streams race.
func (s *Server) notify(nodeID string) {
	if s.opts.OnStatus == nil {
		return
	}
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	st, ok := s.Status(nodeID)
	if !ok {
		return
	}
	s.opts.OnStatus(nodeID, st)
}
