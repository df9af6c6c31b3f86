package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/sdk/store/internal/storepb"
)

// fireStore is a fakeStore that keeps the slots it recorded, as a store's
// unique key does: a slot recorded before answers false. FireRun also
// keeps the run's id. The job "gone" is refused with ErrNotFound, and
// hold, when set, runs first.
type fireStore struct {
	fakeStore
	slots map[string]string // "job@slot" → run id
	order []string          // the slots, in the order they were recorded
	hold  func(ctx context.Context, job string) error
}

func newFireStore() *fireStore { return &fireStore{slots: map[string]string{}} }

func (s *fireStore) record(ctx context.Context, job string, slot time.Time, runID string) (bool, error) {
	if s.hold != nil {
		if err := s.hold(ctx, job); err != nil {
			return false, err
		}
	}
	if job == "gone" {
		return false, fmt.Errorf("record fire %s: %w", job, ErrNotFound)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := fmt.Sprintf("%s@%d", job, slot.Unix())
	if _, ok := s.slots[k]; ok {
		return false, nil
	}
	s.slots[k] = runID
	s.order = append(s.order, k+"="+runID)
	return true, nil
}

func (s *fireStore) RecordFire(ctx context.Context, job string, slot time.Time, runID string) (bool, error) {
	return s.record(ctx, job, slot, runID)
}

func (s *fireStore) FireRun(ctx context.Context, run Run) (bool, error) {
	return s.record(ctx, run.Job, run.ScheduledFor, run.ID)
}

func (s *fireStore) recorded() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.order)
}

// fireCase is one RecordFire (run empty) or FireRun call of a test and
// what it must answer.
type fireCase struct {
	job   string
	slot  int64 // Unix seconds
	run   string
	first bool
	want  error // the sentinel, nil for success
}

func (fc fireCase) call(ctx context.Context, c *GRPCClient) (bool, error) {
	slot := time.Unix(fc.slot, 0)
	if fc.run == "" {
		return c.RecordFire(ctx, fc.job, slot, "")
	}
	return c.FireRun(ctx, Run{ID: fc.run, Job: fc.job, ScheduledFor: slot, Status: StatusRunning})
}

// queueFires queues the calls in the order given (see queueCalls);
// queued must be what c.fires.onQueue sends on. Each call's first answer
// is in firsts once its error has come.
func queueFires(t *testing.T, c *GRPCClient, queued <-chan int, calls []fireCase) (firsts []bool, errs []chan error) {
	t.Helper()
	firsts = make([]bool, len(calls))
	errs = queueCalls(t, queued, len(calls), func(i int) error {
		first, err := calls[i].call(context.Background(), c)
		firsts[i] = first
		return err
	})
	return firsts, errs
}

// holdFires sends firesInFlight RecordFire calls of g's job, which find
// room in flight and go alone, and returns once g holds all of them in
// the store: the calls after them queue.
func holdFires(t *testing.T, c *GRPCClient, g *gate) chan error {
	t.Helper()
	return holdCalls(t, g, firesInFlight, func() error {
		_, err := c.RecordFire(context.Background(), g.machine, time.Unix(1, 0), "")
		return err
	})
}

// fireCases are the calls both tests queue behind a held one: a job's
// second record of a slot answers false, whether it is a RecordFire or a
// FireRun, and each job's calls are applied in their order.
var fireCases = []fireCase{
	{"a", 60, "", true, nil},
	{"b", 60, "r1", true, nil},
	{"a", 60, "r2", false, nil},
	{"gone", 60, "", false, ErrNotFound},
	{"b", 61, "r3", true, nil},
	{"b", 60, "", false, nil},
	{"gone", 61, "r4", false, ErrNotFound},
	{"a", 61, "r5", true, nil},
}

// checkFires checks each call's answer and what the store recorded, and
// returns the calls' errors.
func checkFires(t *testing.T, firsts []bool, answers []chan error, s *fireStore) []error {
	t.Helper()
	errs := make([]error, len(fireCases))
	for i, fc := range fireCases {
		err := await(t, answers[i], fmt.Sprintf("fire %d's answer", i))
		errs[i] = err
		if firsts[i] != fc.first || !errors.Is(err, fc.want) || (fc.want == nil) != (err == nil) {
			t.Errorf("fire %d (%s at %d, run %q): %v, %v; want %v, %v", i, fc.job, fc.slot, fc.run, firsts[i], err, fc.first, fc.want)
		}
	}
	var a, b []string
	for _, k := range s.recorded() {
		switch k[0] {
		case 'a':
			a = append(a, k)
		case 'b':
			b = append(b, k)
		}
	}
	if want := []string{"a@60=", "a@61=r5"}; !slices.Equal(a, want) {
		t.Errorf("job a recorded %v, want %v", a, want)
	}
	if want := []string{"b@60=r1", "b@61=r3"}; !slices.Equal(b, want) {
		t.Errorf("job b recorded %v, want %v", b, want)
	}
	return errs
}

// TestFiresBatch: fires that arrive while firesInFlight are in flight go
// together in the next call, a Fires, and each caller gets what its own
// call would have answered.
func TestFiresBatch(t *testing.T) {
	s := newFireStore()
	g := newGate("held")
	s.hold = g.hold
	c := dial(t, s)
	queued := make(chan int, 64)
	c.client.fires.onQueue = func(n int) { queued <- n }

	held := holdFires(t, c.client, g)
	firsts, answers := queueFires(t, c.client, queued, fireCases)
	release(t, g, held, firesInFlight)
	got := checkFires(t, firsts, answers, s)
	if n, rec, run := c.calls("Fires"), c.calls("RecordFire"), c.calls("FireRun"); n != 1 || rec != firesInFlight || run != 0 {
		t.Errorf("%d fires went in %d Fires, %d RecordFire and %d FireRun calls, want 1, %d and 0 (the first alone, then the rest together)",
			len(fireCases)+firesInFlight, n, rec, run, firesInFlight)
	}
	// Each refusal is the very error the unary call gives.
	for i, fc := range fireCases {
		if fc.want == nil {
			continue
		}
		slot := time.Unix(fc.slot, 0)
		item := &storepb.FireItem{Record: &storepb.RecordFireRequest{Job: fc.job, Slot: pbTime(slot)}}
		if fc.run != "" {
			item = &storepb.FireItem{Run: pbRun(Run{ID: fc.run, Job: fc.job, ScheduledFor: slot, Status: StatusRunning})}
		}
		_, unary := c.client.fires.one(context.Background(), item)
		t.Run(fmt.Sprintf("fire %d is the unary error", i), func(t *testing.T) { sameError(t, got[i], unary) })
	}
}

// TestFiresFallBack: against a plugin without Fires, the batch it refused
// is sent again call by call, with the same answers.
func TestFiresFallBack(t *testing.T) {
	old := newFireStore()
	g := newGate("held")
	old.hold = g.hold
	older, calls := olderPlugin("Fires")
	client := dialOld(t, &GRPCServer{Impl: old}, older)
	queued := make(chan int, 64)
	client.fires.onQueue = func(n int) { queued <- n }

	held := holdFires(t, client, g)
	firsts, answers := queueFires(t, client, queued, fireCases)
	release(t, g, held, firesInFlight)
	checkFires(t, firsts, answers, old)
	if n, unary := calls.of("Fires"), calls.of("RecordFire", "FireRun"); n != 1 || unary != int64(len(fireCases)+firesInFlight) {
		t.Errorf("the old plugin got %d Fires and %d unary fires, want 1 and %d", n, unary, len(fireCases)+firesInFlight)
	}
}
