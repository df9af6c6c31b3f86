package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/saltpeter/saltpeter/sdk/notifier/internal/notifierpb"
)

// GRPCServer is the plugin's side: it implements the gRPC service by
// calling Impl. An error from Impl travels as a gRPC status carrying its
// text: code Canceled or DeadlineExceeded for the context errors,
// permanentCode for a Permanent one, Unknown otherwise.
type GRPCServer struct {
	notifierpb.UnimplementedNotifierServer
	Impl Notifier
}

// Configure implements the gRPC service.
func (s *GRPCServer) Configure(ctx context.Context, req *notifierpb.ConfigureRequest) (*notifierpb.ConfigureResponse, error) {
	if err := s.Impl.Configure(ctx, req.GetConfig()); err != nil {
		return nil, toStatus(err)
	}
	return &notifierpb.ConfigureResponse{}, nil
}

// Notify implements the gRPC service.
func (s *GRPCServer) Notify(ctx context.Context, req *notifierpb.NotifyRequest) (*notifierpb.NotifyResponse, error) {
	var ev Event
	if err := json.Unmarshal(req.GetEvent(), &ev); err != nil {
		// The same bytes would fail the same way on every attempt.
		return nil, toStatus(Permanent(fmt.Errorf("notifier plugin: decode event: %w", err)))
	}
	if err := s.Impl.Notify(ctx, ev); err != nil {
		return nil, toStatus(err)
	}
	return &notifierpb.NotifyResponse{}, nil
}

// permanentCode carries a Permanent error. FailedPrecondition is gRPC's
// "do not retry until the system's state is fixed", which is what
// Permanent says; no other failure of the adapter uses it (the plugin not
// answering is Unavailable).
const permanentCode = codes.FailedPrecondition

// toStatus turns an implementation's error into a gRPC status with the
// same text. The context errors come first: IsPermanent says a context
// error never is, and both sides must agree.
func toStatus(err error) error {
	code := codes.Unknown
	switch {
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case IsPermanent(err):
		code = permanentCode
	}
	return status.Error(code, err.Error())
}
