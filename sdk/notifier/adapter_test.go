package notifier_test

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

	"github.com/saltpeter/saltpeter/sdk/notifier"
)

// recorder is a Notifier that records what reached it and answers with
// what the test put in it.
type recorder struct {
	mu     sync.Mutex
	config []byte
	events []notifier.Event
	err    error
	// block makes Notify wait for its context and report what ended it.
	block   bool
	entered chan struct{}
	ctxErrs chan error
}

func (r *recorder) Configure(_ context.Context, config []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.config = config
	return r.err
}

func (r *recorder) Notify(ctx context.Context, ev notifier.Event) error {
	r.mu.Lock()
	r.events = append(r.events, ev)
	block, err := r.block, r.err
	r.mu.Unlock()
	if block {
		close(r.entered)
		<-ctx.Done()
		r.ctxErrs <- ctx.Err()
		return fmt.Errorf("deliver %s: %w", ev.ID, ctx.Err())
	}
	return err
}

func (r *recorder) seen() ([]byte, []notifier.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.config, r.events
}

func TestRoundTrip(t *testing.T) {
	impl := &recorder{}
	n := notifier.TestGRPCConn(t, impl)
	ctx := context.Background()
	if err := n.Configure(ctx, []byte(`{"url":"https://hooks.example.com"}`)); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	ev := fullEvent()
	if err := n.Notify(ctx, ev); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	config, events := impl.seen()
	if string(config) != `{"url":"https://hooks.example.com"}` {
		t.Errorf("plugin got config %q", config)
	}
	if len(events) != 1 {
		t.Fatalf("plugin got %d events, want 1", len(events))
	}
	for _, tm := range []*time.Time{&ev.ScheduledFor, &ev.StartedAt, &ev.FinishedAt, &ev.At} {
		*tm = tm.UTC()
	}
	if !reflect.DeepEqual(events[0], ev) {
		t.Errorf("plugin got\n %+v\nwant\n %+v", events[0], ev)
	}
}

// TestErrorsCross: an error keeps its text across the wire, and a
// Permanent mark crosses with it; a plain error, and a context error
// even when marked, arrive not permanent.
func TestErrorsCross(t *testing.T) {
	const msg = "POST https://hooks.example.com: 404 Not Found"
	tests := []struct {
		name      string
		err       error
		permanent bool
		is        error
	}{
		{"plain", errors.New(msg), false, nil},
		{"permanent", notifier.Permanent(errors.New(msg)), true, nil},
		{"wrapped permanent", fmt.Errorf("deliver: %w", notifier.Permanent(errors.New(msg))), true, nil},
		{"deadline", fmt.Errorf("%s: %w", msg, context.DeadlineExceeded), false, context.DeadlineExceeded},
		{"deadline marked permanent", notifier.Permanent(fmt.Errorf("%s: %w", msg, context.DeadlineExceeded)), false, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := notifier.IsPermanent(tt.err); got != tt.permanent {
				t.Fatalf("IsPermanent before the wire = %v, want %v", got, tt.permanent)
			}
			for name, n := range map[string]notifier.Notifier{
				"Configure": notifier.TestGRPCConn(t, &recorder{err: tt.err}),
				"Notify":    notifier.TestGRPCConn(t, &recorder{err: tt.err}),
			} {
				var err error
				if name == "Configure" {
					err = n.Configure(context.Background(), []byte("{}"))
				} else {
					err = n.Notify(context.Background(), notifier.Event{ID: "e1", Kind: notifier.EventFailure})
				}
				if err == nil || err.Error() != tt.err.Error() {
					t.Errorf("%s: error %v, want the text %q", name, err, tt.err)
				}
				if got := notifier.IsPermanent(err); got != tt.permanent {
					t.Errorf("%s: IsPermanent after the wire = %v, want %v", name, got, tt.permanent)
				}
				if tt.is != nil && !errors.Is(err, tt.is) {
					t.Errorf("%s: %v is not %v", name, err, tt.is)
				}
				if tt.is == nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
					t.Errorf("%s: a plain error reads as a context error", name)
				}
			}
		})
	}
	if notifier.Permanent(nil) != nil {
		t.Error("Permanent(nil) is not nil")
	}
	if notifier.IsPermanent(nil) {
		t.Error("IsPermanent(nil)")
	}
}

func TestCallerCancels(t *testing.T) {
	impl := &recorder{block: true, entered: make(chan struct{}), ctxErrs: make(chan error, 1)}
	n := notifier.TestGRPCConn(t, impl)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Notify(ctx, notifier.Event{ID: "e1"}) }()
	select {
	case <-impl.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("Notify never reached the plugin")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || notifier.IsPermanent(err) {
			t.Fatalf("Notify err = %v, want context.Canceled, not permanent", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Notify did not return after its context was cancelled")
	}
	select {
	case err := <-impl.ctxErrs:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("plugin's context ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancellation never reached the plugin")
	}
}

// An event the plugin cannot read fails the same way every time: the
// server says so as permanent.
func TestUndecodableEventIsPermanent(t *testing.T) {
	srv := &notifier.GRPCServer{Impl: &recorder{}}
	_, err := srv.Notify(context.Background(), notifier.NotifierRequest(`{"at":"yesterday"}`))
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("Notify of an unreadable event: %v (code %v), want FailedPrecondition", err, status.Code(err))
	}
}
