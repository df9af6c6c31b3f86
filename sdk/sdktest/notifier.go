package sdktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/sdk/notifier"
)

// NotifierFixture is what TestNotifier needs to know about the notifier
// under test: configs that point it at receivers the fixture runs, and a
// way to read what they received.
type NotifierFixture struct {
	// Config makes the notifier deliver to a receiver that accepts every
	// event.
	Config []byte
	// Received returns what that receiver has received so far, one entry
	// per delivery, in any order.
	Received func(t *testing.T) []Delivery
	// FailingConfig makes the notifier deliver to a receiver that fails
	// in a way a later attempt may not (an HTTP 503, a server that is
	// down, a program that exits 75).
	FailingConfig []byte
	// PermanentConfig, when set, makes it deliver to a receiver that
	// refuses for good (an HTTP 404, a mail server refusing the
	// password): Notify must say so with notifier.Permanent.
	PermanentConfig []byte
	// Hanging, when set, returns the config of a receiver that takes a
	// delivery and never answers, and a channel closed once a delivery
	// has reached it: the suite cancels a Notify stuck there. The
	// notifier's own timeout in that config must be longer than the
	// suite's Timeout, or the check proves nothing.
	Hanging func(t *testing.T) (config []byte, reached <-chan struct{})
	// Timeout bounds each call and each wait; 0 means 30s.
	Timeout time.Duration
}

// Delivery is what a fixture's receiver read of one delivered event.
type Delivery struct {
	ID   string
	Kind notifier.EventKind
}

// cancelBound is how soon a Notify must return once its context is
// cancelled.
const cancelBound = 5 * time.Second

// TestNotifier checks a notifier implementation against the contract of
// the notifier kind, twice: called directly, and over a real gRPC
// connection through the kind's adapter (notifier.TestGRPCConn), which is
// how the core calls it. newNotifier returns a fresh, unconfigured
// notifier each time it is called. It checks that:
//
//   - Configure accepts fx.Config, and refuses it with an unknown key
//     added;
//   - Notify delivers an event to the receiver, with its id and kind
//     intact, before it returns nil;
//   - a receiver that fails transiently makes Notify fail with an error
//     that is not Permanent (and one that refuses for good, with one that
//     is, when the fixture has such a receiver);
//   - Notify with a cancelled context returns promptly with
//     context.Canceled, also when it is stuck on a receiver that does not
//     answer;
//   - concurrent Notify calls each deliver their own event.
func TestNotifier(t *testing.T, newNotifier func(t *testing.T) notifier.Notifier, fx NotifierFixture) {
	t.Helper()
	if fx.Config == nil || fx.FailingConfig == nil || fx.Received == nil {
		t.Fatal("sdktest.NotifierFixture needs Config, Received and FailingConfig")
	}
	if fx.Timeout == 0 {
		fx.Timeout = 30 * time.Second
	}
	for _, mode := range []struct {
		name string
		wrap func(t *testing.T, n notifier.Notifier) notifier.Notifier
	}{
		{"direct", func(_ *testing.T, n notifier.Notifier) notifier.Notifier { return n }},
		{"over gRPC", func(t *testing.T, n notifier.Notifier) notifier.Notifier { return notifier.TestGRPCConn(t, n) }},
	} {
		t.Run(mode.name, func(t *testing.T) {
			s := &notifierSuite{fx: fx, fresh: func(t *testing.T) notifier.Notifier {
				t.Helper()
				return mode.wrap(t, newNotifier(t))
			}}
			t.Run("Configure/refuses unknown keys", s.testUnknownKey)
			t.Run("Notify/delivers", s.testDelivers)
			t.Run("Notify/transient failure", s.testTransient)
			t.Run("Notify/permanent failure", s.testPermanent)
			t.Run("Notify/cancelled context", s.testCancelled)
			t.Run("Notify/cancelled while the receiver hangs", s.testHanging)
			t.Run("Notify/concurrent", s.testConcurrent)
		})
	}
}

type notifierSuite struct {
	fx    NotifierFixture
	fresh func(t *testing.T) notifier.Notifier
}

func (s *notifierSuite) ctx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), s.fx.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// configured returns a fresh notifier configured with config.
func (s *notifierSuite) configured(t *testing.T, config []byte) notifier.Notifier {
	t.Helper()
	n := s.fresh(t)
	if err := n.Configure(s.ctx(t), config); err != nil {
		t.Fatalf("Configure(%s): %v", config, err)
	}
	return n
}

// event is a complete event with a fresh id, and text that needs escaping
// in JSON, HTML, mail headers and shells.
func event(t *testing.T, kind notifier.EventKind) notifier.Event {
	t.Helper()
	at := time.Now().UTC().Truncate(time.Second)
	exit := 2
	return notifier.Event{
		ID:           "sdktest-" + randomHex(t, 8),
		Kind:         kind,
		Job:          "sdktest-job",
		Group:        "sdktest",
		RunID:        "run-" + randomHex(t, 4),
		Status:       "failed",
		Trigger:      "schedule",
		ScheduledFor: at.Add(-time.Minute),
		StartedAt:    at.Add(-time.Minute),
		FinishedAt:   at,
		Machines: []notifier.MachineResult{
			{Machine: "db3", Status: "failed", ExitCode: &exit},
			{Machine: "db7", Status: "lost", Reason: "no heartbeat for 30s"},
		},
		MachinesOmitted: 1,
		Counts:          map[string]int{"failed": 1, "lost": 1, "succeeded": 1},
		Message:         `sdktest-job failed on 2 of 3 machines <b>&amp;</b> "quoted" $HOME` + "`id`",
		Core:            "https://cron.example.com",
		At:              at,
		Attempt:         1,
	}
}

// delivered finds ev among what the receiver got.
func (s *notifierSuite) delivered(t *testing.T, ev notifier.Event) bool {
	t.Helper()
	for _, d := range s.fx.Received(t) {
		if d.ID != ev.ID {
			continue
		}
		if d.Kind != ev.Kind {
			t.Errorf("event %s arrived as kind %q, want %q", ev.ID, d.Kind, ev.Kind)
		}
		return true
	}
	return false
}

func (s *notifierSuite) testUnknownKey(t *testing.T) {
	var conf map[string]any
	if err := json.Unmarshal(s.fx.Config, &conf); err != nil {
		t.Fatalf("fixture Config %s is not a JSON object: %v", s.fx.Config, err)
	}
	conf["saltpeter_no_such_setting"] = 1
	bad, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.fresh(t).Configure(s.ctx(t), bad); err == nil {
		t.Errorf("Configure accepts an unknown key: %s", bad)
	}
	if err := s.fresh(t).Configure(s.ctx(t), []byte(`[1, 2]`)); err == nil {
		t.Error("Configure accepts a config that is not a JSON object")
	}
}

func (s *notifierSuite) testDelivers(t *testing.T) {
	n := s.configured(t, s.fx.Config)
	for _, kind := range []notifier.EventKind{notifier.EventFailure, notifier.EventMissed, notifier.EventRecovered} {
		ev := event(t, kind)
		if kind == notifier.EventMissed {
			ev.RunID, ev.Status, ev.Trigger, ev.Machines, ev.Counts, ev.MachinesOmitted = "", "", "", nil, nil, 0
			ev.StartedAt, ev.FinishedAt = time.Time{}, time.Time{}
		}
		if err := n.Notify(s.ctx(t), ev); err != nil {
			t.Fatalf("Notify(%s, %s): %v", ev.ID, kind, err)
		}
		// Notify returns nil once the receiver accepted the event: it
		// must be there now, not later.
		if !s.delivered(t, ev) {
			t.Errorf("Notify(%s, %s) returned nil, but the receiver has not got it", ev.ID, kind)
		}
	}
}

func (s *notifierSuite) testTransient(t *testing.T) {
	n := s.configured(t, s.fx.FailingConfig)
	ev := event(t, notifier.EventFailure)
	err := n.Notify(s.ctx(t), ev)
	switch {
	case err == nil:
		t.Fatal("Notify to a failing receiver returned nil")
	case notifier.IsPermanent(err):
		t.Errorf("Notify to a receiver that failed transiently is Permanent, so the core would not retry it: %v", err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Notify to a failing receiver failed with a context error: %v", err)
	}
}

func (s *notifierSuite) testPermanent(t *testing.T) {
	if s.fx.PermanentConfig == nil {
		t.Skip("the fixture has no receiver that refuses for good")
	}
	n := s.configured(t, s.fx.PermanentConfig)
	err := n.Notify(s.ctx(t), event(t, notifier.EventFailure))
	if err == nil || !notifier.IsPermanent(err) {
		t.Errorf("Notify to a receiver that refuses for good = %v, want a Permanent error", err)
	}
}

func (s *notifierSuite) testCancelled(t *testing.T) {
	n := s.configured(t, s.fx.Config)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() { done <- n.Notify(ctx, event(t, notifier.EventFailure)) }()
	s.awaitCancelled(t, done)
}

func (s *notifierSuite) testHanging(t *testing.T) {
	if s.fx.Hanging == nil {
		t.Skip("the fixture has no receiver that hangs")
	}
	config, reached := s.fx.Hanging(t)
	n := s.configured(t, config)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- n.Notify(ctx, event(t, notifier.EventFailure)) }()
	select {
	case <-reached:
	case err := <-done:
		t.Fatalf("Notify to a receiver that never answers returned: %v", err)
	case <-time.After(s.fx.Timeout):
		t.Fatalf("the delivery did not reach the hanging receiver within %s", s.fx.Timeout)
	}
	cancel()
	s.awaitCancelled(t, done)
}

// awaitCancelled waits for a cancelled Notify's error.
func (s *notifierSuite) awaitCancelled(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Notify with a cancelled context = %v, want an error that is context.Canceled", err)
		}
		if notifier.IsPermanent(err) {
			t.Errorf("a cancelled Notify is Permanent: %v", err)
		}
	case <-time.After(cancelBound):
		t.Fatalf("Notify did not return within %s of its context being cancelled", cancelBound)
	}
}

func (s *notifierSuite) testConcurrent(t *testing.T) {
	n := s.configured(t, s.fx.Config)
	const parallel = 8
	events := make([]notifier.Event, parallel)
	errs := make([]error, parallel)
	for i := range events {
		events[i] = event(t, notifier.EventKinds[i%len(notifier.EventKinds)])
	}
	ctx := s.ctx(t)
	var wg sync.WaitGroup
	for i := range events {
		wg.Go(func() { errs[i] = n.Notify(ctx, events[i]) })
	}
	wg.Wait()
	got := s.fx.Received(t)
	for i, ev := range events {
		if errs[i] != nil {
			t.Errorf("Notify(%s): %v", ev.ID, errs[i])
			continue
		}
		count := 0
		for _, d := range got {
			if d.ID == ev.ID {
				count++
				if d.Kind != ev.Kind {
					t.Errorf("event %s arrived as kind %q, want %q", ev.ID, d.Kind, ev.Kind)
				}
			}
		}
		if count != 1 {
			t.Errorf("event %s arrived %d times, want once", ev.ID, count)
		}
	}
	ids := make([]string, 0, len(got))
	for _, d := range got {
		ids = append(ids, d.ID)
	}
	if slices.Contains(ids, "") {
		t.Errorf("the receiver got an event without its id: %q", ids)
	}
}

// String makes a Delivery readable in failures.
func (d Delivery) String() string { return fmt.Sprintf("%s(%s)", d.ID, d.Kind) }
