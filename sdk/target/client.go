package target

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/saltpeter/saltpeter/sdk/target/internal/targetpb"
)

// GRPCClient is the core's side of a target plugin: it implements Target
// by calling the plugin over gRPC. A failed call returns an error with the
// plugin's message; errors.Is finds context.Canceled and
// context.DeadlineExceeded in it, and status.Code its gRPC code
// (codes.Unavailable when the plugin could not be reached).
type GRPCClient struct {
	client targetpb.TargetClient
	batch  batcher
}

func newGRPCClient(c targetpb.TargetClient) *GRPCClient {
	return &GRPCClient{client: c, batch: batcher{client: c}}
}

// Configure implements Target.
func (c *GRPCClient) Configure(ctx context.Context, config []byte) error {
	_, err := c.client.Configure(ctx, &targetpb.ConfigureRequest{Config: config})
	return fromStatus(err)
}

// Resolve implements Target.
func (c *GRPCClient) Resolve(ctx context.Context, req ResolveRequest) ([]string, error) {
	msg := &targetpb.ResolveRequest{Job: req.Job, Args: req.Args}
	out, err := c.batch.do(ctx, &targetpb.Call{Call: &targetpb.Call_Resolve{Resolve: msg}})
	if err == nil {
		return out.GetResolve().GetMachines(), nil
	}
	if !errors.Is(err, errUseUnary) {
		return nil, err
	}
	resp, err := c.client.Resolve(ctx, msg)
	if err != nil {
		return nil, fromStatus(err)
	}
	return resp.GetMachines(), nil
}

// Dispatch implements Target.
func (c *GRPCClient) Dispatch(ctx context.Context, req DispatchRequest) (DispatchResult, error) {
	msg := &targetpb.DispatchRequest{
		Job:         req.Job,
		RunId:       req.RunID,
		Machine:     req.Machine,
		Args:        req.Args,
		WrapperPath: req.WrapperPath,
		Protocol:    int32(req.Protocol),
		Env:         req.Env,
	}
	out, err := c.batch.do(ctx, &targetpb.Call{Call: &targetpb.Call_Dispatch{Dispatch: msg}})
	if err == nil {
		return DispatchResult{Detail: out.GetDispatch().GetDetail()}, nil
	}
	if !errors.Is(err, errUseUnary) {
		return DispatchResult{}, err
	}
	resp, err := c.client.Dispatch(ctx, msg)
	if err != nil {
		return DispatchResult{}, fromStatus(err)
	}
	return DispatchResult{Detail: resp.GetDetail()}, nil
}

// CheckArgs implements ArgsChecker. A plugin whose target does not check
// (or built before CheckArgs existed) answers ErrCannotCheck.
func (c *GRPCClient) CheckArgs(ctx context.Context, args []byte) error {
	_, err := c.client.CheckArgs(ctx, &targetpb.CheckArgsRequest{Args: args})
	if status.Code(err) == codes.Unimplemented {
		return ErrCannotCheck
	}
	return fromStatus(err)
}

var (
	_ Target      = (*GRPCClient)(nil)
	_ ArgsChecker = (*GRPCClient)(nil)
)

// remoteError is a failed call's gRPC status as a Go error whose text is
// the status message, that is the plugin's own error text.
type remoteError struct {
	st *status.Status
}

func (e *remoteError) Error() string {
	if msg := e.st.Message(); msg != "" {
		return msg
	}
	return "target plugin: " + e.st.Code().String()
}

// GRPCStatus lets status.FromError and status.Code see the status.
func (e *remoteError) GRPCStatus() *status.Status { return e.st }

// Unwrap maps cancellation codes back to the context errors.
func (e *remoteError) Unwrap() error {
	switch e.st.Code() {
	case codes.Canceled:
		return context.Canceled
	case codes.DeadlineExceeded:
		return context.DeadlineExceeded
	case unreachableCode:
		return ErrUnreachable
	}
	return nil
}

func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	var re *remoteError
	if errors.As(err, &re) {
		return err
	}
	return &remoteError{st: st}
}
