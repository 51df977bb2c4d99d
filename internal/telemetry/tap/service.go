package tap

import (
	"encoding/json"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The tap service, served on the control plane's xDS gRPC port without
// generated code. Watch is a bidirectional stream of
// google.protobuf.BytesValue messages, each holding one JSON object:
// FromProxy from the proxy (the first names its node), ToProxy from the
// control plane. JSON rather than Struct fields: events are the JSON of
// docs/tap.md, so the control plane passes them on as they came.
const (
	// ServiceName is the gRPC service.
	ServiceName = "trellis.tap.v1.Tap"
	// WatchMethod is the full method name of Watch.
	WatchMethod = "/" + ServiceName + "/Watch"
)

// Watcher is the control plane's side of the service.
type Watcher interface {
	// Watch serves one proxy's stream until it ends.
	Watch(s *ServerStream) error
}

var watchDesc = grpc.StreamDesc{StreamName: "Watch", ServerStreams: true, ClientStreams: true,
	Handler: func(srv any, stream grpc.ServerStream) error {
		return srv.(Watcher).Watch(&ServerStream{stream})
	}}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: ServiceName,
	HandlerType: (*Watcher)(nil),
	Streams:     []grpc.StreamDesc{watchDesc},
	Metadata:    "trellis/tap/v1/tap.proto",
}

// Register adds w as the tap service of g (the control plane's xDS gRPC
// server).
func Register(g grpc.ServiceRegistrar, w Watcher) { g.RegisterService(&serviceDesc, w) }

// ServerStream is the control plane's end of one proxy's stream.
type ServerStream struct{ grpc.ServerStream }

// Recv reads the next message of the proxy.
func (s *ServerStream) Recv() (*FromProxy, error) {
	m := new(FromProxy)
	return m, recvJSON(s.ServerStream, m)
}

// Send writes a message to the proxy. Not safe for concurrent use.
func (s *ServerStream) Send(m *ToProxy) error { return sendJSON(s.ServerStream, m) }

// msgStream is the part of a client or server stream the messages use.
type msgStream interface {
	SendMsg(m any) error
	RecvMsg(m any) error
}

func sendJSON(s msgStream, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.SendMsg(wrapperspb.Bytes(b))
}

func recvJSON(s msgStream, v any) error {
	var b wrapperspb.BytesValue
	if err := s.RecvMsg(&b); err != nil {
		return err
	}
	if err := json.Unmarshal(b.GetValue(), v); err != nil {
		return fmt.Errorf("tap message: %w", err)
	}
	return nil
}

// NodeOf returns the node id a stream's first message names ("" when it
// names none or is not a FromProxy): for the control plane's check of a
// TLS peer before the stream is served.
func NodeOf(first *wrapperspb.BytesValue) string {
	var m FromProxy
	if json.Unmarshal(first.GetValue(), &m) != nil {
		return ""
	}
	return m.Node
}
