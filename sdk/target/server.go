package target

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/saltpeter/saltpeter/sdk/target/internal/targetpb"
)

// GRPCServer is the plugin's side: it implements the gRPC service by
// calling Impl. An error from Impl travels as a gRPC status carrying its
// text (code Canceled or DeadlineExceeded for the context errors, Unknown
// otherwise).
type GRPCServer struct {
	targetpb.UnimplementedTargetServer
	Impl Target
}

// Configure implements the gRPC service.
func (s *GRPCServer) Configure(ctx context.Context, req *targetpb.ConfigureRequest) (*targetpb.ConfigureResponse, error) {
	if err := s.Impl.Configure(ctx, req.GetConfig()); err != nil {
		return nil, toStatus(err)
	}
	return &targetpb.ConfigureResponse{}, nil
}

// Resolve implements the gRPC service.
func (s *GRPCServer) Resolve(ctx context.Context, req *targetpb.ResolveRequest) (*targetpb.ResolveResponse, error) {
	machines, err := s.Impl.Resolve(ctx, ResolveRequest{Job: req.GetJob(), Args: req.GetArgs()})
	if err != nil {
		return nil, toStatus(err)
	}
	return &targetpb.ResolveResponse{Machines: machines}, nil
}

// CheckArgs implements the gRPC service: the target's ArgsChecker, or
// Unimplemented for a target without one.
func (s *GRPCServer) CheckArgs(ctx context.Context, req *targetpb.CheckArgsRequest) (*targetpb.CheckArgsResponse, error) {
	c, ok := s.Impl.(ArgsChecker)
	if !ok {
		return nil, status.Error(codes.Unimplemented, ErrCannotCheck.Error())
	}
	if err := c.CheckArgs(ctx, req.GetArgs()); err != nil {
		return nil, toStatus(err)
	}
	return &targetpb.CheckArgsResponse{}, nil
}

// Dispatch implements the gRPC service.
func (s *GRPCServer) Dispatch(ctx context.Context, req *targetpb.DispatchRequest) (*targetpb.DispatchResponse, error) {
	res, err := s.Impl.Dispatch(ctx, DispatchRequest{
		Job:         req.GetJob(),
		RunID:       req.GetRunId(),
		Machine:     req.GetMachine(),
		Args:        req.GetArgs(),
		WrapperPath: req.GetWrapperPath(),
		Protocol:    int(req.GetProtocol()),
		Env:         req.GetEnv(),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &targetpb.DispatchResponse{Detail: res.Detail}, nil
}

// unreachableCode carries ErrUnreachable: no other failure of the adapter
// uses it (the plugin not answering is Unavailable).
const unreachableCode = codes.FailedPrecondition

// toStatus turns an implementation's error into a gRPC status with the
// same text.
func toStatus(err error) error {
	code := codes.Unknown
	switch {
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, ErrUnreachable):
		code = unreachableCode
	}
	return status.Error(code, err.Error())
}
