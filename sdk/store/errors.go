package store

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/saltpeter/saltpeter/sdk/store/internal/storepb"
)

// The core tests a store's errors with errors.Is (ErrNotFound, ErrExists,
// ...), so they must survive the plugin boundary. The server sends a
// status whose code fits the error (for other gRPC clients and for logs)
// and an ErrorDetail naming the kind (what the client trusts: a code
// alone cannot tell the store's own "unavailable" from a dead plugin).

// kinds maps each error kind to its sentinel and gRPC code.
var kinds = []struct {
	kind storepb.ErrorKind
	err  error
	code codes.Code
}{
	// Before NOT_FOUND, which ErrLeaseLost wraps: the first match wins.
	{storepb.ErrorKind_ERROR_KIND_LEASE_LOST, ErrLeaseLost, codes.Aborted},
	{storepb.ErrorKind_ERROR_KIND_NOT_FOUND, ErrNotFound, codes.NotFound},
	{storepb.ErrorKind_ERROR_KIND_EXISTS, ErrExists, codes.AlreadyExists},
	{storepb.ErrorKind_ERROR_KIND_FINAL, ErrFinal, codes.FailedPrecondition},
	{storepb.ErrorKind_ERROR_KIND_OUT_OF_ORDER, ErrOutOfOrder, codes.OutOfRange},
	{storepb.ErrorKind_ERROR_KIND_UNAVAILABLE, ErrUnavailable, codes.Unavailable},
	{storepb.ErrorKind_ERROR_KIND_CANCELED, context.Canceled, codes.Canceled},
	{storepb.ErrorKind_ERROR_KIND_DEADLINE_EXCEEDED, context.DeadlineExceeded, codes.DeadlineExceeded},
}

// kindOf classifies an implementation's error.
func kindOf(err error) (storepb.ErrorKind, codes.Code) {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.kind, k.code
		}
	}
	return storepb.ErrorKind_ERROR_KIND_UNSPECIFIED, codes.Unknown
}

// sentinelOf is the error a kind stands for, nil for none.
func sentinelOf(kind storepb.ErrorKind) error {
	for _, k := range kinds {
		if k.kind == kind {
			return k.err
		}
	}
	return nil
}

// toStatus turns an implementation's error into a gRPC status with its
// text, its code and its kind.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	kind, code := kindOf(err)
	st := status.New(code, err.Error())
	if withDetail, derr := st.WithDetails(&storepb.ErrorDetail{Kind: kind}); derr == nil {
		st = withDetail
	}
	return st.Err()
}

// remoteError is a failed call as the core sees it: the plugin's text,
// the gRPC status, and the store error it stands for.
type remoteError struct {
	st       *status.Status
	sentinel error // ErrNotFound etc.; nil for an error of no known kind
	// answered is true when the store itself returned the error, false
	// when the call did not reach it (the plugin is gone).
	answered bool
}

func (e *remoteError) Error() string {
	if msg := e.st.Message(); msg != "" {
		return msg
	}
	return "store plugin: " + e.st.Code().String()
}

// GRPCStatus lets status.FromError and status.Code see the status.
func (e *remoteError) GRPCStatus() *status.Status { return e.st }

// Unwrap makes errors.Is find the store error (and the context errors).
func (e *remoteError) Unwrap() error { return e.sentinel }

// PluginAnswered reports whether the store plugin itself returned the
// error rather than the call failing to reach it. The plugin host uses it
// (through an interface, not this type) to restart a plugin only when the
// call did not get through: a store that answers "unavailable" because
// its database is down is alive, and restarting it would not help.
func (e *remoteError) PluginAnswered() bool { return e.answered }

// fromStatus turns a failed call's error into a remoteError.
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
	for _, d := range st.Details() {
		if detail, ok := d.(*storepb.ErrorDetail); ok {
			return &remoteError{st: st, sentinel: sentinelOf(detail.GetKind()), answered: true}
		}
	}
	// No detail: the call failed on its way (or reached something that is
	// not our server), or the plugin does not know the method; classify
	// by code alone.
	var sentinel error
	switch st.Code() {
	case codes.Unimplemented:
		// A plugin built before the method: it answered, and is alive.
		return &remoteError{st: st, sentinel: errors.ErrUnsupported, answered: true}
	case codes.Unavailable:
		sentinel = ErrUnavailable
	case codes.Canceled:
		sentinel = context.Canceled
	case codes.DeadlineExceeded:
		sentinel = context.DeadlineExceeded
	}
	return &remoteError{st: st, sentinel: sentinel}
}

// resultError turns one AppendOutput result into an error.
func resultError(r *storepb.AppendResult) error {
	if !r.GetFailed() {
		return nil
	}
	code := codes.Unknown
	for _, k := range kinds {
		if k.kind == r.GetKind() {
			code = k.code
		}
	}
	return &remoteError{st: status.New(code, r.GetMessage()), sentinel: sentinelOf(r.GetKind()), answered: true}
}

// itemResult is what a batched call answers for one item that failed with
// err: what toStatus would send for it, nil for success.
func itemResult(err error) *storepb.ItemResult {
	if err == nil {
		return &storepb.ItemResult{}
	}
	kind, code := kindOf(err)
	return &storepb.ItemResult{Code: uint32(code), Kind: kind, Message: err.Error()}
}

// itemError turns one item's result of a batched call into the error the
// item's unary call would have returned: the same status (code, text and
// ErrorDetail) through fromStatus.
func itemError(r *storepb.ItemResult) error {
	if codes.Code(r.GetCode()) == codes.OK {
		return nil
	}
	st := status.New(codes.Code(r.GetCode()), r.GetMessage())
	if withDetail, err := st.WithDetails(&storepb.ErrorDetail{Kind: r.GetKind()}); err == nil {
		st = withDetail
	}
	return fromStatus(st.Err())
}
