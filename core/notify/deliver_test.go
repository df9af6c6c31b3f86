package notify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/core/config"
	"github.com/saltpeter/saltpeter/core/store/memory"
	"github.com/saltpeter/saltpeter/sdk/notifier"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// fakeNotifier records what it was given and answers with the next of
// its errors (nil once they run out).
type fakeNotifier struct {
	mu   sync.Mutex
	got  []notifier.Event
	errs []error
}

func (f *fakeNotifier) Configure(context.Context, []byte) error { return nil }
func (f *fakeNotifier) Notify(_ context.Context, ev notifier.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, ev)
	if len(f.errs) == 0 {
		return nil
	}
	err := f.errs[0]
	f.errs = f.errs[1:]
	return err
}

type fakeNotifiers map[string]*fakeNotifier

func (f fakeNotifiers) Notifier(_ context.Context, name string) (notifier.Notifier, error) {
	n, ok := f[name]
	if !ok {
		return nil, notifier.Permanent(fmt.Errorf("no notifier %q", name))
	}
	return n, nil
}

// TestDeliverer: delivered at once; a transient error retried after the
// back-off with the attempt counted, then delivered; a permanent error,
// or the last attempt, fails it for good and counts it.
func TestDeliverer(t *testing.T) {
	ctx := context.Background()
	clock := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	tests := []struct {
		name      string
		errs      []error
		attempts  int // Once calls, the clock moved past each back-off
		wantState string
		wantTries int
	}{
		{"delivered", nil, 1, store.NotificationDelivered, 1},
		{"retried then delivered", []error{errors.New("503 from the receiver"), errors.New("timeout")}, 3, store.NotificationDelivered, 3},
		{"permanent", []error{notifier.Permanent(errors.New("404 from the receiver"))}, 1, store.NotificationFailed, 1},
		{"out of attempts", []error{errors.New("a"), errors.New("b"), errors.New("c")}, 3, store.NotificationFailed, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := memory.New()
			fake := &fakeNotifier{errs: tc.errs}
			d := NewDeliverer(Config{Store: st, Notifiers: fakeNotifiers{"ops": fake}, Owner: "core-1", MaxBackoff: 3 * time.Minute, Now: now})
			d.SetPolicies(map[string]Policy{"ops": {Attempts: 3, Backoff: time.Minute}})
			job := &config.Job{Name: "j", Notify: []config.Notify{{Notifier: "ops", On: []string{"failure"}}}}
			ns, err := ForRun(job, store.Run{ID: "r1", Job: "j", Status: store.StatusFailed}, "", "", clock)
			if err != nil || len(ns) != 1 {
				t.Fatalf("ForRun: %v %v", ns, err)
			}
			if err := st.EnqueueNotifications(ctx, ns); err != nil {
				t.Fatal(err)
			}
			for i := range tc.attempts {
				if n, err := d.Once(ctx); err != nil || n != 1 {
					t.Fatalf("attempt %d: claimed %d, %v", i+1, n, err)
				}
				// Not due again before its back-off.
				if n, err := d.Once(ctx); err != nil || n != 0 {
					t.Fatalf("after attempt %d: claimed %d again at once, %v", i+1, n, err)
				}
				clock = clock.Add(time.Duration(1<<i) * time.Minute)
			}
			got, err := st.ListNotifications(ctx, store.NotificationFilter{})
			if err != nil || len(got) != 1 {
				t.Fatal(got, err)
			}
			if got[0].State != tc.wantState || len(fake.got) != tc.wantTries {
				t.Fatalf("state %s after %d tries (%+v), want %s after %d", got[0].State, len(fake.got), got[0], tc.wantState, tc.wantTries)
			}
			for i, ev := range fake.got {
				if ev.Attempt != i+1 || ev.ID != "r1/ops/failure" {
					t.Errorf("try %d carried attempt %d, id %q", i+1, ev.Attempt, ev.ID)
				}
			}
			wantFailed := int64(0)
			if tc.wantState == store.NotificationFailed {
				wantFailed = 1
			}
			if d.Failed() != wantFailed {
				t.Errorf("Failed() = %d, want %d", d.Failed(), wantFailed)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	d := NewDeliverer(Config{Backoff: 30 * time.Second, MaxBackoff: 5 * time.Minute})
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 5 * time.Minute}
	for i, w := range want {
		if got := d.backoff(30*time.Second, i); got != w {
			t.Errorf("backoff after %d failures = %s, want %s", i, got, w)
		}
	}
	if got := d.backoff(30*time.Second, 1000); got != 5*time.Minute {
		t.Errorf("backoff(1000) = %s", got)
	}
}

// TestDelivererUnknownNotifier: a notification for a notifier block that
// is gone (a reload removed it) fails for good at its first attempt.
func TestDelivererUnknownNotifier(t *testing.T) {
	ctx := context.Background()
	st := memory.New()
	d := NewDeliverer(Config{Store: st, Notifiers: fakeNotifiers{}, Owner: "core-1"})
	job := &config.Job{Name: "j", Notify: []config.Notify{{Notifier: "gone", On: []string{"failure"}}}}
	ns, err := ForRun(job, store.Run{ID: "r1", Job: "j", Status: store.StatusFailed}, "", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.EnqueueNotifications(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if n, err := d.Once(ctx); n != 1 || err != nil {
		t.Fatalf("claimed %d, %v", n, err)
	}
	got, err := st.ListNotifications(ctx, store.NotificationFilter{})
	if err != nil || len(got) != 1 || got[0].State != store.NotificationFailed || !strings.Contains(got[0].LastError, `no notifier "gone"`) {
		t.Fatalf("notification %+v %v, want failed for good naming the notifier", got, err)
	}
}

// recordingStore is a store whose FinishNotification notes what the log
// held when it was called, and can fail it.
type recordingStore struct {
	store.Store
	log       *syncBuffer
	failWith  error
	logBefore string
}

func (s *recordingStore) FinishNotification(ctx context.Context, id, owner string, res store.NotificationResult) error {
	s.logBefore = s.log.String()
	if s.failWith != nil {
		return s.failWith
	}
	return s.Store.FinishNotification(ctx, id, owner, res)
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestDelivererLogsWhatItRecorded: an attempt's outcome is logged only
// once the outbox holds it (a core killed between the two would
// otherwise have logged a retry the outbox never learned of), and not
// at all when recording it fails.
func TestDelivererLogsWhatItRecorded(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		errs     []error
		failWith error
		wantLog  string
	}{
		{"delivered", nil, nil, "notification delivered"},
		{"retry", []error{errors.New("503")}, nil, "notification not delivered; trying again later"},
		{"failed", []error{notifier.Permanent(errors.New("404"))}, nil, "notification failed for good"},
		{"not recorded", []error{errors.New("503")}, errors.New("store gone"), "record a notification attempt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			buf := &syncBuffer{}
			st := &recordingStore{Store: memory.New(), log: buf, failWith: tc.failWith}
			logger := hclog.New(&hclog.LoggerOptions{Output: buf, Level: hclog.Debug})
			d := NewDeliverer(Config{Logger: logger, Store: st, Notifiers: fakeNotifiers{"ops": &fakeNotifier{errs: tc.errs}}, Owner: "core-1"})
			job := &config.Job{Name: "j", Notify: []config.Notify{{Notifier: "ops", On: []string{"failure"}}}}
			ns, err := ForRun(job, store.Run{ID: "r1", Job: "j", Status: store.StatusFailed}, "", "", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if err := st.EnqueueNotifications(ctx, ns); err != nil {
				t.Fatal(err)
			}
			if n, err := d.Once(ctx); n != 1 || err != nil {
				t.Fatalf("claimed %d, %v", n, err)
			}
			if st.logBefore != "" {
				t.Errorf("logged before the outcome was recorded: %s", st.logBefore)
			}
			got := buf.String()
			if !strings.Contains(got, tc.wantLog) {
				t.Errorf("log %q, want a line %q", got, tc.wantLog)
			}
			if tc.failWith != nil && strings.Contains(got, "trying again later") {
				t.Errorf("an unrecorded attempt logged a scheduled retry: %s", got)
			}
		})
	}
}
