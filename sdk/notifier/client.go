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

// GRPCClient is the core's side of a notifier plugin: it implements
// Notifier by calling the plugin over gRPC. A failed call returns an error
// with the plugin's message; IsPermanent finds a Permanent mark in it,
// errors.Is finds context.Canceled and context.DeadlineExceeded, and
// status.Code its gRPC code (codes.Unavailable when the plugin could not
// be reached).
type GRPCClient struct {
	client notifierpb.NotifierClient
}

// Configure implements Notifier.
func (c *GRPCClient) Configure(ctx context.Context, config []byte) error {
	_, err := c.client.Configure(ctx, &notifierpb.ConfigureRequest{Config: config})
	return fromStatus(err)
}

// Notify implements Notifier.
func (c *GRPCClient) Notify(ctx context.Context, ev Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return Permanent(fmt.Errorf("encode event %s: %w", ev.ID, err))
	}
	_, err = c.client.Notify(ctx, &notifierpb.NotifyRequest{Event: b})
	return fromStatus(err)
}

var _ Notifier = (*GRPCClient)(nil)

// remoteError is a failed call's gRPC status as a Go error whose text is
// the status message, that is the plugin's own error text.
type remoteError struct {
	st *status.Status
}

func (e *remoteError) Error() string {
	if msg := e.st.Message(); msg != "" {
		return msg
	}
	return "notifier plugin: " + e.st.Code().String()
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
	}
	return nil
}

func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	var re *remoteError
	if errors.As(err, &re) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	re = &remoteError{st: st}
	if st.Code() == permanentCode {
		return Permanent(re)
	}
	return re
}
