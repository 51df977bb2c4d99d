package echo

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// maxGRPCPayload bounds the response sizes a gRPC request may ask for
// (64 MiB), as each such payload is one in-memory message.
const maxGRPCPayload = 64 << 20

// Metadata keys of the gRPC controls, the gRPC form of the x-echo-delay and
// x-echo-fail HTTP headers.
const (
	mdDelay = "x-echo-delay"
	mdFail  = "x-echo-fail"
)

// newGRPCServer returns the gRPC server behind ServeHTTP, with the test
// and health services registered.
func (s *Server) newGRPCServer() *grpc.Server {
	g := grpc.NewServer(
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
	)
	grpc_testing.RegisterTestServiceServer(g, testService{})
	healthgrpc.RegisterHealthServer(g, s.health)
	return g
}

// unaryInterceptor adds x-echo-name and x-echo-version to the header and
// trailer metadata of every call and applies the gRPC controls.
func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	_ = grpc.SetHeader(ctx, s.md)
	_ = grpc.SetTrailer(ctx, s.md)
	if err := grpcControls(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	_ = ss.SetHeader(s.md)
	ss.SetTrailer(s.md)
	if err := grpcControls(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}

// grpcControls applies x-echo-delay, then x-echo-fail (which fails the call
// with codes.Unavailable). Health checks are exempt so they stay truthful.
func grpcControls(ctx context.Context, method string) error {
	if strings.HasPrefix(method, grpcHealthPrefix) {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(mdDelay); len(v) > 0 {
		d, err := parseDelay(mdDelay, v[0])
		if err != nil {
			return status.Error(codes.InvalidArgument, "echo: "+err.Error())
		}
		if !sleep(ctx, d) {
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	if v := md.Get(mdFail); len(v) > 0 {
		p, err := parseProbability(mdFail, v[0])
		if err != nil {
			return status.Error(codes.InvalidArgument, "echo: "+err.Error())
		}
		if hit(p) {
			return status.Error(codes.Unavailable, "echo: injected failure")
		}
	}
	return nil
}

// testService implements grpc.testing.TestService as the gRPC interop
// server does, plus echoing: UnaryCall and FullDuplexCall return the
// request payload when no response size is asked for.
type testService struct {
	grpc_testing.UnimplementedTestServiceServer
}

var _ grpc_testing.TestServiceServer = testService{}

func (testService) EmptyCall(context.Context, *grpc_testing.Empty) (*grpc_testing.Empty, error) {
	return &grpc_testing.Empty{}, nil
}

func (testService) UnaryCall(_ context.Context, req *grpc_testing.SimpleRequest) (*grpc_testing.SimpleResponse, error) {
	if err := echoStatus(req.GetResponseStatus()); err != nil {
		return nil, err
	}
	if req.GetResponseSize() == 0 {
		return &grpc_testing.SimpleResponse{Payload: req.GetPayload()}, nil
	}
	p, err := newPayload(req.GetResponseSize())
	if err != nil {
		return nil, err
	}
	return &grpc_testing.SimpleResponse{Payload: p}, nil
}

func (testService) StreamingOutputCall(req *grpc_testing.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[grpc_testing.StreamingOutputCallResponse]) error {
	if err := sendResponses(stream, req.GetResponseParameters()); err != nil {
		return err
	}
	return echoStatus(req.GetResponseStatus())
}

func (testService) StreamingInputCall(stream grpc.ClientStreamingServer[grpc_testing.StreamingInputCallRequest, grpc_testing.StreamingInputCallResponse]) error {
	var sum int32
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&grpc_testing.StreamingInputCallResponse{AggregatedPayloadSize: sum})
		}
		if err != nil {
			return err
		}
		sum += int32(len(req.GetPayload().GetBody()))
	}
}

func (testService) FullDuplexCall(stream grpc.BidiStreamingServer[grpc_testing.StreamingOutputCallRequest, grpc_testing.StreamingOutputCallResponse]) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := duplexReply(stream, req); err != nil {
			return err
		}
	}
}

func (testService) HalfDuplexCall(stream grpc.BidiStreamingServer[grpc_testing.StreamingOutputCallRequest, grpc_testing.StreamingOutputCallResponse]) error {
	var reqs []*grpc_testing.StreamingOutputCallRequest
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		reqs = append(reqs, req)
	}
	for _, req := range reqs {
		if err := duplexReply(stream, req); err != nil {
			return err
		}
	}
	return nil
}

// duplexReply answers one duplex request: its status if it asks for one,
// else one response per ResponseParameters, else its own payload.
func duplexReply(stream grpc.ServerStreamingServer[grpc_testing.StreamingOutputCallResponse], req *grpc_testing.StreamingOutputCallRequest) error {
	if err := echoStatus(req.GetResponseStatus()); err != nil {
		return err
	}
	if len(req.GetResponseParameters()) == 0 {
		return stream.Send(&grpc_testing.StreamingOutputCallResponse{Payload: req.GetPayload()})
	}
	return sendResponses(stream, req.GetResponseParameters())
}

// sendResponses sends one payload per parameter, each after its interval.
func sendResponses(stream grpc.ServerStreamingServer[grpc_testing.StreamingOutputCallResponse], params []*grpc_testing.ResponseParameters) error {
	ctx := stream.Context()
	for _, p := range params {
		if us := p.GetIntervalUs(); us > 0 && !sleep(ctx, time.Duration(us)*time.Microsecond) {
			return status.FromContextError(ctx.Err()).Err()
		}
		pl, err := newPayload(p.GetSize())
		if err != nil {
			return err
		}
		if err := stream.Send(&grpc_testing.StreamingOutputCallResponse{Payload: pl}); err != nil {
			return err
		}
	}
	return nil
}

// echoStatus returns the error a request's ResponseStatus asks for, or nil.
func echoStatus(st *grpc_testing.EchoStatus) error {
	if st.GetCode() == 0 {
		return nil
	}
	return status.Error(codes.Code(st.GetCode()), st.GetMessage())
}

// newPayload returns a payload of n pattern bytes; it shares the read-only
// payload buffer, which protobuf marshalling only reads.
func newPayload(n int32) (*grpc_testing.Payload, error) {
	if n < 0 || n > maxGRPCPayload {
		return nil, status.Errorf(codes.InvalidArgument, "echo: response size %d: want 0..%d", n, maxGRPCPayload)
	}
	return &grpc_testing.Payload{Type: grpc_testing.PayloadType_COMPRESSABLE, Body: payload(int(n))}, nil
}
