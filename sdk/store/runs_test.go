package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/saltpeter/saltpeter/sdk/store/internal/storepb"
)

// runStore is a fakeStore that keeps, for each run it has, the reasons
// UpdateRun set, in the order applied, and how many notifications came
// with them. A run it does not have is ErrNotFound. hold, when set, runs
// first.
type runStore struct {
	fakeStore
	reasons map[string][]string
	notes   map[string]int
	hold    func(ctx context.Context, runID string) error
}

func newRunStore(ids ...string) *runStore {
	s := &runStore{reasons: map[string][]string{}, notes: map[string]int{}}
	for _, id := range ids {
		s.reasons[id] = nil
	}
	return s
}

func (s *runStore) GetRun(ctx context.Context, runID string) (Run, error) {
	if s.hold != nil {
		if err := s.hold(ctx, runID); err != nil {
			return Run{}, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.reasons[runID]
	if !ok {
		return Run{}, fmt.Errorf("get run %s: %w", runID, ErrNotFound)
	}
	run := Run{ID: runID, Job: "j", Status: StatusRunning}
	if len(r) > 0 {
		run.Reason = r[len(r)-1]
	}
	return run, nil
}

func (s *runStore) UpdateRun(ctx context.Context, runID string, u RunUpdate) error {
	if s.hold != nil {
		if err := s.hold(ctx, runID); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.reasons[runID]; !ok {
		return fmt.Errorf("update run %s: %w", runID, ErrNotFound)
	}
	if u.Reason != nil {
		s.reasons[runID] = append(s.reasons[runID], *u.Reason)
	}
	s.notes[runID] += len(u.Notifications)
	return nil
}

func (s *runStore) applied(runID string) ([]string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reasons[runID]), s.notes[runID]
}

// runUpdateCase is one UpdateRun call of a test and what it must answer.
type runUpdateCase struct {
	run    string
	reason string
	notify bool
	want   error
}

func (rc runUpdateCase) update() RunUpdate {
	u := RunUpdate{Reason: ptr(rc.reason)}
	if rc.notify {
		u.Notifications = []Notification{{ID: "n-" + rc.reason, RunID: rc.run, Notifier: "mail", Kind: "run_finished", Event: []byte(`{}`)}}
	}
	return u
}

var runUpdateCases = []runUpdateCase{
	{"a", "a1", false, nil},
	{"b", "b1", true, nil},
	{"gone", "x", false, ErrNotFound},
	{"a", "a2", true, nil},
	{"b", "b2", false, nil},
	{"a", "a3", false, nil},
}

// checkRunUpdates checks each UpdateRun's answer and what the store
// applied, each run's in order.
func checkRunUpdates(t *testing.T, answers []chan error, s *runStore) {
	t.Helper()
	for i, rc := range runUpdateCases {
		err := await(t, answers[i], fmt.Sprintf("update %d's answer", i))
		if !errors.Is(err, rc.want) || (rc.want == nil) != (err == nil) {
			t.Errorf("update %d (run %s): %v, want %v", i, rc.run, err, rc.want)
		}
	}
	for run, want := range map[string][]string{"a": {"a1", "a2", "a3"}, "b": {"b1", "b2"}} {
		got, notes := s.applied(run)
		if !slices.Equal(got, want) || notes != 1 {
			t.Errorf("run %s got %v and %d notifications, want %v and 1", run, got, notes, want)
		}
	}
}

// TestUpdateRunsBatch: UpdateRun calls that arrive while one is in flight
// go together in one UpdateRuns, notifications and all, each run's in
// order, and each caller gets what its own call would have answered.
func TestUpdateRunsBatch(t *testing.T) {
	s := newRunStore("held", "a", "b")
	g := newGate("held")
	s.hold = g.hold
	c := dial(t, s)
	queued := make(chan int, 64)
	c.client.runUpd.onQueue = func(n int) { queued <- n }
	ctx := context.Background()

	held := holdCalls(t, g, 1, func() error { return c.client.UpdateRun(ctx, "held", RunUpdate{}) })
	answers := queueCalls(t, queued, len(runUpdateCases), func(i int) error {
		rc := runUpdateCases[i]
		return c.client.UpdateRun(ctx, rc.run, rc.update())
	})
	release(t, g, held, 1)
	checkRunUpdates(t, answers, s)
	if n, unary, notify := c.calls("UpdateRuns"), c.calls("UpdateRun"), c.calls("UpdateRunNotify"); n != 1 || unary != 1 || notify != 0 {
		t.Errorf("%d updates went in %d UpdateRuns, %d UpdateRun and %d UpdateRunNotify calls, want 1, 1 and 0",
			len(runUpdateCases)+1, n, unary, notify)
	}
}

// TestGetRunsBatch: GetRun calls that arrive while runsInFlight are in
// flight go together in one GetRuns, and each caller gets its own run, or
// the error its own call would have answered.
func TestGetRunsBatch(t *testing.T) {
	s := newRunStore("held", "a", "b")
	s.reasons["a"] = []string{"ra"}
	g := newGate("held")
	s.hold = g.hold
	c := dial(t, s)
	queued := make(chan int, 64)
	c.client.runs.onQueue = func(n int) { queued <- n }
	ctx := context.Background()

	held := holdCalls(t, g, runsInFlight, func() error { _, err := c.client.GetRun(ctx, "held"); return err })
	ids := []string{"a", "gone", "b", "a"}
	got := make([]Run, len(ids))
	answers := queueCalls(t, queued, len(ids), func(i int) error {
		r, err := c.client.GetRun(ctx, ids[i])
		got[i] = r
		return err
	})
	release(t, g, held, runsInFlight)
	for i, id := range ids {
		err := await(t, answers[i], fmt.Sprintf("read %d's answer", i))
		switch {
		case id == "gone":
			_, unary := c.client.runs.one(ctx, &storepb.GetRunRequest{RunId: id})
			t.Run("the unary error", func(t *testing.T) { sameError(t, err, unary) })
		case err != nil:
			t.Errorf("read %d (run %s): %v", i, id, err)
		case got[i].ID != id || (id == "a") != (got[i].Reason == "ra"):
			t.Errorf("read %d (run %s) got %+v", i, id, got[i])
		}
	}
	if n, unary := c.calls("GetRuns"), c.calls("GetRun"); n != 1 || unary != runsInFlight+1 {
		t.Errorf("%d reads went in %d GetRuns and %d GetRun calls, want 1 and %d (the held ones and the last alone)",
			len(ids)+runsInFlight, n, unary, runsInFlight+1)
	}
}

// TestUpdateRunsFallBack: against a plugin without UpdateRuns, the batch
// it refused is sent again call by call, an update with notifications as
// UpdateRunNotify.
func TestUpdateRunsFallBack(t *testing.T) {
	old := newRunStore("held", "a", "b")
	g := newGate("held")
	old.hold = g.hold
	older, calls := olderPlugin("UpdateRuns", "GetRuns")
	client := dialOld(t, &GRPCServer{Impl: old}, older)
	queued := make(chan int, 64)
	client.runUpd.onQueue = func(n int) { queued <- n }
	ctx := context.Background()

	held := holdCalls(t, g, 1, func() error { return client.UpdateRun(ctx, "held", RunUpdate{}) })
	answers := queueCalls(t, queued, len(runUpdateCases), func(i int) error {
		rc := runUpdateCases[i]
		return client.UpdateRun(ctx, rc.run, rc.update())
	})
	release(t, g, held, 1)
	checkRunUpdates(t, answers, old)
	if n, unary, notify := calls.of("UpdateRuns"), calls.of("UpdateRun"), calls.of("UpdateRunNotify"); n != 1 || unary != 5 || notify != 2 {
		t.Errorf("the old plugin got %d UpdateRuns, %d UpdateRun and %d UpdateRunNotify calls, want 1, 5 and 2", n, unary, notify)
	}
}
