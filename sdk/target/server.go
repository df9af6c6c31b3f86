package target

import (
	"context"
	"errors"
	"sync"
	"time"

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

// Calls implements the gRPC service: each call of the batch runs at once
// in its own goroutine, bounded by the deadline it carries, and its
// outcome is sent when it ends. The headers go first, so that the core
// knows the batch arrived and can hand over the next.
func (s *GRPCServer) Calls(req *targetpb.CallBatch, stream targetpb.Target_CallsServer) error {
	if err := stream.SendHeader(nil); err != nil {
		return err
	}
	var (
		mu      sync.Mutex
		sendErr error
		wg      sync.WaitGroup
	)
	for i, c := range req.GetCalls() {
		wg.Go(func() {
			out := s.call(stream.Context(), c)
			out.Index = int32(i)
			mu.Lock()
			defer mu.Unlock()
			if sendErr == nil {
				sendErr = stream.Send(out)
			}
		})
	}
	wg.Wait()
	return sendErr
}

// call runs one call of a batch as its unary method would and returns
// what that would have answered.
func (s *GRPCServer) call(ctx context.Context, c *targetpb.Call) *targetpb.CallOutcome {
	if d := c.GetDeadlineUnixNano(); d != 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, time.Unix(0, d))
		defer cancel()
	}
	out := &targetpb.CallOutcome{}
	var err error
	switch call := c.GetCall().(type) {
	case *targetpb.Call_Resolve:
		var resp *targetpb.ResolveResponse
		if resp, err = s.Resolve(ctx, call.Resolve); err == nil {
			out.Result = &targetpb.CallOutcome_Resolve{Resolve: resp}
		}
	case *targetpb.Call_Dispatch:
		var resp *targetpb.DispatchResponse
		if resp, err = s.Dispatch(ctx, call.Dispatch); err == nil {
			out.Result = &targetpb.CallOutcome_Dispatch{Dispatch: resp}
		}
	default:
		err = status.Error(codes.Unimplemented, "target plugin: a call of a kind this plugin does not know")
	}
	if err != nil {
		st := status.Convert(err)
		out.Code, out.Error = int32(st.Code()), st.Message()
	}
	return out
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
