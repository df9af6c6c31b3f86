package target_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/saltpeter/saltpeter/sdk/target"
)

// recorder is a Target that records what reached it and answers with what
// the test put in it.
type recorder struct {
	mu       sync.Mutex
	config   []byte
	resolve  target.ResolveRequest
	dispatch target.DispatchRequest

	machines []string
	detail   string
	err      error
	// block makes Dispatch wait for its context and report what ended it.
	block   bool
	ctxErrs chan error
}

// seenRequests is what reached a recorder.
type seenRequests struct {
	config   []byte
	resolve  target.ResolveRequest
	dispatch target.DispatchRequest
}

func (r *recorder) seen() seenRequests {
	r.mu.Lock()
	defer r.mu.Unlock()
	return seenRequests{r.config, r.resolve, r.dispatch}
}

func (r *recorder) Configure(_ context.Context, config []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.config = config
	return r.err
}

func (r *recorder) Resolve(_ context.Context, req target.ResolveRequest) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resolve = req
	return r.machines, r.err
}

func (r *recorder) Dispatch(ctx context.Context, req target.DispatchRequest) (target.DispatchResult, error) {
	r.mu.Lock()
	r.dispatch = req
	block, err, detail := r.block, r.err, r.detail
	r.mu.Unlock()
	if block {
		<-ctx.Done()
		r.ctxErrs <- ctx.Err()
		return target.DispatchResult{}, ctx.Err()
	}
	return target.DispatchResult{Detail: detail}, err
}

func TestRoundTrip(t *testing.T) {
	impl := &recorder{machines: []string{"web1", "web2"}, detail: "saltpeter-wrapper: detached pid=42"}
	tgt := target.TestGRPCConn(t, impl)
	ctx := context.Background()

	if err := tgt.Configure(ctx, []byte(`{"user":"sp"}`)); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	if got := string(impl.seen().config); got != `{"user":"sp"}` {
		t.Errorf("plugin got config %q", got)
	}

	rreq := target.ResolveRequest{Job: "backup", Args: []byte(`{"glob":"web*"}`)}
	machines, err := tgt.Resolve(ctx, rreq)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if !reflect.DeepEqual(machines, impl.machines) {
		t.Errorf("Resolve = %q, want %q", machines, impl.machines)
	}
	if got := impl.seen().resolve; !reflect.DeepEqual(got, rreq) {
		t.Errorf("plugin got %+v, want %+v", got, rreq)
	}

	dreq := target.DispatchRequest{
		Job:         "backup",
		RunID:       "r-1",
		Machine:     "web1",
		Args:        []byte(`{"glob":"web*"}`),
		WrapperPath: "/opt/sp/wrapper",
		Protocol:    2,
		Env:         map[string]string{"SP_TOKEN": "s3cret", "SP_JOB_NAME": "backup"},
	}
	res, err := tgt.Dispatch(ctx, dreq)
	if err != nil {
		t.Fatalf("Dispatch: %v", err)
	}
	if res.Detail != impl.detail {
		t.Errorf("Detail = %q, want %q", res.Detail, impl.detail)
	}
	if got := impl.seen().dispatch; !reflect.DeepEqual(got, dreq) {
		t.Errorf("plugin got %+v, want %+v", got, dreq)
	}
}

func TestErrorsKeepMessages(t *testing.T) {
	const msg = "web1: ssh: handshake failed: no route to host"
	impl := &recorder{err: errors.New(msg)}
	tgt := target.TestGRPCConn(t, impl)
	ctx := context.Background()

	calls := map[string]func() error{
		"Configure": func() error { return tgt.Configure(ctx, []byte("{}")) },
		"Resolve": func() error {
			_, err := tgt.Resolve(ctx, target.ResolveRequest{Job: "j"})
			return err
		},
		"Dispatch": func() error {
			_, err := tgt.Dispatch(ctx, target.DispatchRequest{Job: "j"})
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			err := call()
			if err == nil {
				t.Fatal("no error")
			}
			if err.Error() != msg {
				t.Errorf("error %q, want %q", err, msg)
			}
			if errors.Is(err, context.Canceled) {
				t.Errorf("a plain error reads as context.Canceled")
			}
		})
	}
}

func TestContextErrorsCross(t *testing.T) {
	t.Run("plugin's context error", func(t *testing.T) {
		impl := &recorder{err: context.DeadlineExceeded}
		tgt := target.TestGRPCConn(t, impl)
		_, err := tgt.Resolve(context.Background(), target.ResolveRequest{})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want one that is context.DeadlineExceeded", err)
		}
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("code %v", status.Code(err))
		}
	})
	t.Run("caller cancels", func(t *testing.T) {
		impl := &recorder{block: true, ctxErrs: make(chan error, 1)}
		tgt := target.TestGRPCConn(t, impl)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := tgt.Dispatch(ctx, target.DispatchRequest{Job: "j"})
			done <- err
		}()
		// Cancel once the call is inside the plugin.
		waitFor(t, func() bool { return impl.seen().dispatch.Job == "j" })
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Dispatch err = %v, want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Dispatch did not return after its context was cancelled")
		}
		select {
		case err := <-impl.ctxErrs:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("plugin's context ended with %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("cancellation never reached the plugin")
		}
	})
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestUnreachableCrosses: a plugin's ErrUnreachable reaches the core as
// ErrUnreachable, with the plugin's text; another error does not.
func TestUnreachableCrosses(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("web1:22: connection refused: %w", target.ErrUnreachable), true},
		{errors.New("web1: saltpeter-wrapper: not found"), false},
	} {
		tgt := target.TestGRPCConn(t, &recorder{err: c.err})
		_, err := tgt.Dispatch(ctx, target.DispatchRequest{Job: "j"})
		if err == nil || err.Error() != c.err.Error() || errors.Is(err, target.ErrUnreachable) != c.want {
			t.Errorf("Dispatch failing with %q: got %v (unreachable %v), want unreachable %v",
				c.err, err, errors.Is(err, target.ErrUnreachable), c.want)
		}
	}
}
