package schedule_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/core/schedule"
)

var t0 = time.Date(2024, 5, 1, 10, 0, 0, 500_000_000, time.UTC)

func mustParse(t *testing.T, expr string) schedule.Schedule {
	t.Helper()
	s, err := schedule.Parse(expr)
	if err != nil {
		t.Fatalf("Parse(%q): %v", expr, err)
	}
	return s
}

type harness struct {
	clock *fakeClock
	out   chan schedule.Firing
	s     *schedule.Scheduler
	done  chan error
}

// start runs a Scheduler on a fake clock at t0, stopped at cleanup.
func start(t *testing.T, cfg schedule.Config, before ...func(*schedule.Scheduler)) *harness {
	t.Helper()
	return startAt(t, t0, cfg, before...)
}

// startAt is start with the fake clock at now.
func startAt(t *testing.T, now time.Time, cfg schedule.Config, before ...func(*schedule.Scheduler)) *harness {
	t.Helper()
	h := &harness{clock: newFakeClock(now), out: make(chan schedule.Firing), done: make(chan error, 1)}
	cfg.Clock, cfg.Firings = h.clock, h.out
	h.s = schedule.NewScheduler(cfg)
	for _, f := range before {
		f(h.s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { h.done <- h.s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(failAfter):
			t.Error("Run did not return after cancel")
		}
	})
	return h
}

func slot(sec int) time.Time { return time.Date(2024, 5, 1, 10, 0, sec, 0, time.UTC) }

func firings(job string, secs ...int) []schedule.Firing {
	var out []schedule.Firing
	for _, s := range secs {
		out = append(out, schedule.Firing{Job: job, Slot: slot(s)})
	}
	return out
}

func sameFirings(t *testing.T, got, want []schedule.Firing) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d firings %v, want %d %v", len(got), got, len(want), want)
	}
	for i := range got {
		if got[i].Job != want[i].Job || !got[i].Slot.Equal(want[i].Slot) {
			t.Fatalf("firing %d = %v, want %v (all: %v)", i, got[i], want[i], got)
		}
	}
}

func TestSchedulerFiresEachSlotOnceOnTime(t *testing.T) {
	h := start(t, schedule.Config{})
	h.s.Set([]schedule.Entry{{Name: "tick", Schedule: mustParse(t, "*/2 * * * * *"), Enabled: true}})

	for _, sec := range []int{2, 4, 6, 8} {
		got, parkedUntil := collect(t, h.clock, h.out)
		if len(got) != 0 {
			t.Fatalf("fired %v before %s", got, slot(sec))
		}
		// The timer aims at the slot itself, or at MaxWait from now when
		// the slot is further, to read the wall clock again.
		want := slot(sec)
		if limit := h.clock.Now().Add(schedule.MaxWait); limit.Before(want) {
			want = limit
		}
		if !parkedUntil.Equal(want) {
			t.Fatalf("timer set for %s, want %s", parkedUntil, want)
		}
		// One nanosecond early: nothing fires.
		h.clock.set(slot(sec).Add(-time.Nanosecond))
		if got, _ := collect(t, h.clock, h.out); len(got) != 0 {
			t.Fatalf("fired %v before the slot", got)
		}
		h.clock.set(slot(sec))
		got, _ = collect(t, h.clock, h.out)
		sameFirings(t, got, firings("tick", sec))
		if next := h.s.NextRun("tick"); !next.Equal(slot(sec + 2)) {
			t.Fatalf("NextRun = %s, want %s", next, slot(sec+2))
		}
	}
}

func TestSchedulerClockJumps(t *testing.T) {
	h := start(t, schedule.Config{})
	h.s.Set([]schedule.Entry{{Name: "tick", Schedule: mustParse(t, "*/2 * * * * *"), Enabled: true}})
	collect(t, h.clock, h.out)

	// Forward over several slots: each fires once, in order, late.
	h.clock.set(slot(9))
	got, _ := collect(t, h.clock, h.out)
	sameFirings(t, got, firings("tick", 2, 4, 6, 8))

	// Backward over fired slots: none fires again.
	h.clock.set(slot(1))
	if got, _ := collect(t, h.clock, h.out); len(got) != 0 {
		t.Fatalf("after stepping back, fired %v again", got)
	}
	h.clock.set(slot(9))
	if got, _ := collect(t, h.clock, h.out); len(got) != 0 {
		t.Fatalf("after stepping forward again, fired %v again", got)
	}
	h.clock.set(slot(10))
	got, _ = collect(t, h.clock, h.out)
	sameFirings(t, got, firings("tick", 10))

	// After a step back, a reload, even one that changes the expression
	// (to one with the same slots) or disables and re-enables the job,
	// computes slots after the last one fired: nothing fires twice.
	h.clock.set(slot(3))
	h.s.Set([]schedule.Entry{{Name: "tick", Schedule: mustParse(t, "0/2 * * * * *"), Enabled: true}})
	h.s.Set([]schedule.Entry{{Name: "tick", Schedule: mustParse(t, "0/2 * * * * *"), Enabled: false}})
	h.s.Set([]schedule.Entry{{Name: "tick", Schedule: mustParse(t, "0/2 * * * * *"), Enabled: true}})
	if next := h.s.NextRun("tick"); !next.Equal(slot(12)) {
		t.Errorf("NextRun = %s, want %s", next, slot(12))
	}
	h.clock.set(slot(11))
	if got, _ := collect(t, h.clock, h.out); len(got) != 0 {
		t.Fatalf("after a reload and a step back, fired %v again", got)
	}
}

// A step of the wall clock moves no timer (they run on the monotonic
// clock); the loop notices it within a second of time passing, because it
// reads the wall clock again at least that often.
func TestSchedulerWallClockSteps(t *testing.T) {
	const noticedWithin = time.Second
	t.Run("forward: a slot stepped over fires within a second", func(t *testing.T) {
		h := start(t, schedule.Config{})
		h.s.Set([]schedule.Entry{{Name: "hourly", Schedule: mustParse(t, "0 0 * * * *"), Enabled: true}})
		collect(t, h.clock, h.out)
		h.clock.jump(time.Hour) // 11:00:00.5: the 11:00 slot is due
		h.clock.advance(noticedWithin)
		got, _ := collect(t, h.clock, h.out)
		sameFirings(t, got, []schedule.Firing{{Job: "hourly", Slot: time.Date(2024, 5, 1, 11, 0, 0, 0, time.UTC)}})
	})

	t.Run("forward over many slots: MaxLate still applies", func(t *testing.T) {
		h := start(t, schedule.Config{MaxLate: 5 * time.Second})
		h.s.Set([]schedule.Entry{{Name: "tick", Schedule: mustParse(t, "*/2 * * * * *"), Enabled: true}})
		collect(t, h.clock, h.out)
		h.clock.jump(20 * time.Second) // 10:00:20.5
		h.clock.advance(noticedWithin) // 10:00:21.5: slots up to 16.5 are too late
		got, _ := collect(t, h.clock, h.out)
		sameFirings(t, got, firings("tick", 18, 20))
		if st, _ := h.s.State("tick"); st.Skipped != 8 {
			t.Errorf("Skipped = %d, want 8 (slots 2 to 16)", st.Skipped)
		}
	})

	t.Run("backward: nothing fires early or twice", func(t *testing.T) {
		h := start(t, schedule.Config{})
		h.s.Set([]schedule.Entry{{Name: "tick", Schedule: mustParse(t, "*/2 * * * * *"), Enabled: true}})
		collect(t, h.clock, h.out)
		h.clock.set(slot(2))
		got, _ := collect(t, h.clock, h.out)
		sameFirings(t, got, firings("tick", 2))

		h.clock.jump(-time.Hour) // 09:00:02: slots 2 and 4 are ahead again
		for range 5 {
			h.clock.advance(noticedWithin)
			got, parkedUntil := collect(t, h.clock, h.out)
			if len(got) != 0 {
				t.Fatalf("at %s, after a step back, fired %v", h.clock.Now(), got)
			}
			if limit := h.clock.Now().Add(noticedWithin); parkedUntil.After(limit) {
				t.Fatalf("parked until %s, after %s: a step would go unnoticed", parkedUntil, limit)
			}
		}
		if next := h.s.NextRun("tick"); !next.Equal(slot(4)) {
			t.Errorf("NextRun = %s, want %s", next, slot(4))
		}
		// The hour passes again: slot 2 stays fired, slot 4 fires on time.
		h.clock.set(slot(4).Add(-time.Nanosecond))
		if got, _ := collect(t, h.clock, h.out); len(got) != 0 {
			t.Fatalf("fired %v before 10:00:04", got)
		}
		h.clock.set(slot(4))
		got, _ = collect(t, h.clock, h.out)
		sameFirings(t, got, firings("tick", 4))
	})
}

// A job's schedule from WithDST fires its policy's slots, and a reload that
// changes only the policy is a changed schedule.
func TestSchedulerDSTPolicy(t *testing.T) {
	ny := mustLoc(t, "America/New_York")
	entry := func(name, gap string) schedule.Entry {
		s, err := schedule.WithDST(mustParse(t, "0 30 2 * * *"), ny, gap, "")
		if err != nil {
			t.Fatal(err)
		}
		return schedule.Entry{Name: name, Schedule: s, Location: ny, Enabled: true}
	}
	// 2026-03-08 01:00 EST; at 02:00 the clocks go to 03:00 EDT.
	h := startAt(t, mustTime(t, "2026-03-08T06:00:00Z"), schedule.Config{})
	h.s.Set([]schedule.Entry{entry("shift", "shift"), entry("skip", "skip"), entry("changed", "shift")})
	collect(t, h.clock, h.out)
	for name, want := range map[string]string{
		"shift":   "2026-03-08T03:00:00-04:00",
		"skip":    "2026-03-09T02:30:00-04:00",
		"changed": "2026-03-08T03:00:00-04:00",
	} {
		if got := h.s.NextRun(name).Format(time.RFC3339); got != want {
			t.Errorf("NextRun(%s) = %s, want %s", name, got, want)
		}
	}
	h.s.Set([]schedule.Entry{entry("shift", "shift"), entry("skip", "skip"), entry("changed", "skip")})
	if got, want := h.s.NextRun("changed").Format(time.RFC3339), "2026-03-09T02:30:00-04:00"; got != want {
		t.Errorf("after a reload to skip, NextRun(changed) = %s, want %s", got, want)
	}
	collect(t, h.clock, h.out)
	h.clock.set(mustTime(t, "2026-03-08T07:00:00Z"))
	got, _ := collect(t, h.clock, h.out)
	if len(got) != 1 || got[0].Job != "shift" || got[0].Slot.Format(time.RFC3339) != "2026-03-08T03:00:00-04:00" || got[0].Slot.Location() != ny {
		t.Fatalf("at the gap's end fired %v, want shift at 03:00 EDT", got)
	}
}

func TestSchedulerSkipsSlotsOlderThanMaxLate(t *testing.T) {
	h := start(t, schedule.Config{MaxLate: 5 * time.Second})
	h.s.Set([]schedule.Entry{{Name: "tick", Schedule: mustParse(t, "*/2 * * * * *"), Enabled: true}})
	collect(t, h.clock, h.out)

	h.clock.set(slot(20))
	got, _ := collect(t, h.clock, h.out)
	sameFirings(t, got, firings("tick", 16, 18, 20))
	st, _ := h.s.State("tick")
	if st.Skipped != 7 {
		t.Errorf("Skipped = %d, want 7 (slots 2 to 14)", st.Skipped)
	}

	// A long jump over a fine-grained schedule is bounded too.
	h.clock.set(slot(20).Add(30 * 24 * time.Hour))
	got, _ = collect(t, h.clock, h.out)
	if len(got) != 3 {
		t.Fatalf("after a 30-day jump got %d firings, want the 3 within MaxLate: %v", len(got), got)
	}
}

func TestSchedulerDisableAndReenable(t *testing.T) {
	h := start(t, schedule.Config{})
	every2 := mustParse(t, "*/2 * * * * *")
	h.s.Set([]schedule.Entry{
		{Name: "a", Schedule: every2, Enabled: true},
		{Name: "b", Schedule: every2, Enabled: true},
	})
	collect(t, h.clock, h.out)
	h.clock.set(slot(2))
	got, _ := collect(t, h.clock, h.out)
	sameFirings(t, got, append(firings("a", 2), firings("b", 2)...))

	h.s.Set([]schedule.Entry{
		{Name: "a", Schedule: every2, Enabled: true},
		{Name: "b", Schedule: every2, Enabled: false},
	})
	if next := h.s.NextRun("b"); !next.IsZero() {
		t.Errorf("NextRun of a disabled job = %s, want zero", next)
	}
	if st, ok := h.s.State("b"); !ok || st.Enabled || !st.Last.Equal(slot(2)) {
		t.Errorf("State(b) = %+v, %v; want disabled, last 10:00:02", st, ok)
	}
	collect(t, h.clock, h.out) // parked on the new timer before the clock moves
	h.clock.set(slot(4))
	got, _ = collect(t, h.clock, h.out)
	sameFirings(t, got, firings("a", 4))
	h.clock.set(slot(7))
	got, _ = collect(t, h.clock, h.out)
	sameFirings(t, got, firings("a", 6))

	// Re-enabled at 10:00:07: slots 4 and 6 were missed, not caught up.
	h.s.Set([]schedule.Entry{
		{Name: "a", Schedule: every2, Enabled: true},
		{Name: "b", Schedule: every2, Enabled: true},
	})
	if got, _ := collect(t, h.clock, h.out); len(got) != 0 {
		t.Fatalf("re-enabling fired missed slots %v", got)
	}
	if next := h.s.NextRun("b"); !next.Equal(slot(8)) {
		t.Errorf("NextRun(b) = %s, want %s", next, slot(8))
	}
	h.clock.set(slot(8))
	got, _ = collect(t, h.clock, h.out)
	sameFirings(t, got, append(firings("a", 8), firings("b", 8)...))
}

func TestSchedulerSetKeepsLastSlots(t *testing.T) {
	h := start(t, schedule.Config{})
	h.s.Set([]schedule.Entry{
		{Name: "same", Schedule: mustParse(t, "*/2 * * * * *"), Enabled: true},
		{Name: "changed", Schedule: mustParse(t, "*/2 * * * * *"), Enabled: true},
	})
	collect(t, h.clock, h.out)
	h.clock.set(slot(2))
	collect(t, h.clock, h.out)
	h.clock.set(slot(3))
	collect(t, h.clock, h.out)

	// The reload parses afresh: a new Schedule value, the same expression.
	h.s.Set([]schedule.Entry{
		{Name: "same", Schedule: mustParse(t, "*/2  *  * * * *"), Enabled: true},
		{Name: "changed", Schedule: mustParse(t, "*/5 * * * * *"), Enabled: true},
		{Name: "new", Schedule: mustParse(t, "@every 3s"), Enabled: true},
		{Name: "manual", Schedule: mustParse(t, "@manually"), Enabled: true},
	})
	// Wait for the loop to park on its new timer before the clock moves:
	// a timer armed after the move would count from the new time.
	if got, _ := collect(t, h.clock, h.out); len(got) != 0 {
		t.Fatalf("the reload fired %v", got)
	}
	for name, want := range map[string]struct{ last, next time.Time }{
		"same":    {slot(2), slot(4)},
		"changed": {slot(2), slot(5)},
		"new":     {time.Time{}, slot(6)},
		"manual":  {time.Time{}, time.Time{}},
	} {
		st, ok := h.s.State(name)
		if !ok || !st.Last.Equal(want.last) || !st.Next.Equal(want.next) {
			t.Errorf("State(%s) = %+v, %v; want last %s next %s", name, st, ok, want.last, want.next)
		}
	}
	h.clock.set(slot(6))
	got, _ := collect(t, h.clock, h.out)
	sameFirings(t, got, []schedule.Firing{
		{Job: "same", Slot: slot(4)}, {Job: "changed", Slot: slot(5)},
		{Job: "new", Slot: slot(6)}, {Job: "same", Slot: slot(6)},
	})

	// A job dropped from the set is forgotten.
	h.s.Set(nil)
	if _, ok := h.s.State("same"); ok {
		t.Error("State of a removed job still known")
	}
}

func TestSchedulerSlowReceiver(t *testing.T) {
	blocked := make(chan schedule.Firing, 16)
	h := start(t, schedule.Config{}, func(s *schedule.Scheduler) {
		schedule.OnBlocked(s, func(f schedule.Firing) { blocked <- f })
	})
	awaitBlocked := func(want schedule.Firing) {
		t.Helper()
		select {
		case f := <-blocked:
			if f.Job != want.Job || !f.Slot.Equal(want.Slot) {
				t.Fatalf("blocked on %v, want %v", f, want)
			}
		case <-time.After(failAfter):
			t.Fatalf("scheduler never blocked on sending %v", want)
		}
	}
	every2 := mustParse(t, "*/2 * * * * *")
	h.s.Set([]schedule.Entry{{Name: "tick", Schedule: every2, Enabled: true}})
	collect(t, h.clock, h.out)

	// Nobody receives while the slot comes due: the scheduler holds the
	// firing and, while blocked, still applies a Set.
	h.clock.set(slot(2))
	awaitBlocked(schedule.Firing{Job: "tick", Slot: slot(2)})
	h.s.Set([]schedule.Entry{
		{Name: "tick", Schedule: every2, Enabled: true},
		{Name: "other", Schedule: mustParse(t, "@every 1s"), Enabled: true},
	})
	if next := h.s.NextRun("other"); !next.Equal(slot(3)) {
		t.Fatalf("Set while blocked: NextRun(other) = %s, want %s", next, slot(3))
	}
	awaitBlocked(schedule.Firing{Job: "tick", Slot: slot(2)}) // the same firing, again
	h.clock.set(slot(4))
	got, _ := collect(t, h.clock, h.out)
	sameFirings(t, got, []schedule.Firing{
		{Job: "tick", Slot: slot(2)}, {Job: "other", Slot: slot(3)},
		{Job: "other", Slot: slot(4)}, {Job: "tick", Slot: slot(4)},
	})
	for len(blocked) > 0 {
		<-blocked
	}

	// Disabled while its firing is blocked: it is not sent. The hourly job
	// keeps a timer set, so that collect sees the loop park.
	h.s.Set([]schedule.Entry{
		{Name: "tick", Schedule: every2, Enabled: true},
		{Name: "guard", Schedule: mustParse(t, "@hourly"), Enabled: true},
	})
	collect(t, h.clock, h.out) // parked on the new timer before the clock moves
	h.clock.set(slot(6))
	awaitBlocked(schedule.Firing{Job: "tick", Slot: slot(6)})
	h.s.Set([]schedule.Entry{
		{Name: "tick", Schedule: every2, Enabled: false},
		{Name: "guard", Schedule: mustParse(t, "@hourly"), Enabled: true},
	})
	if got, _ := collect(t, h.clock, h.out); len(got) != 0 {
		t.Fatalf("a job disabled while its firing was blocked fired %v", got)
	}
}

func TestSchedulerStopsWhileBlocked(t *testing.T) {
	clock := newFakeClock(t0)
	out := make(chan schedule.Firing)
	s := schedule.NewScheduler(schedule.Config{Firings: out, Clock: clock})
	// Set before Run: kept and applied when Run starts.
	s.Set([]schedule.Entry{{Name: "tick", Schedule: mustParse(t, "@every 1s"), Enabled: true}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	collect(t, clock, out)

	if err := s.Run(ctx); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second Run = %v, want an error saying it is already running", err)
	}

	clock.set(slot(5)) // due, and nobody receives
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	case <-time.After(failAfter):
		t.Fatal("Run did not return while blocked on a send")
	}
	// Stopped: Set does not wait for a loop that is gone.
	s.Set(nil)
}

func TestSchedulerManyJobs(t *testing.T) {
	h := start(t, schedule.Config{})
	const jobs = 3000
	periods := []int{1, 2, 3, 5, 7, 10, 60}
	var entries []schedule.Entry
	for i := range jobs {
		p := periods[i%len(periods)]
		entries = append(entries, schedule.Entry{
			Name:     fmt.Sprintf("job-%04d", i),
			Schedule: mustParse(t, fmt.Sprintf("@every %ds", p)),
			Enabled:  i%10 != 9, // every tenth disabled
		})
	}
	h.s.Set(entries)
	collect(t, h.clock, h.out)

	count := map[string]int{}
	lastSlot := map[string]time.Time{}
	const seconds = 30
	for sec := 1; sec <= seconds; sec++ {
		h.clock.set(slot(sec))
		got, _ := collect(t, h.clock, h.out)
		for _, f := range got {
			if !f.Slot.Equal(slot(sec)) {
				t.Fatalf("at %s fired %v", slot(sec), f)
			}
			if !f.Slot.After(lastSlot[f.Job]) {
				t.Fatalf("%s fired slot %s after %s", f.Job, f.Slot, lastSlot[f.Job])
			}
			lastSlot[f.Job] = f.Slot
			count[f.Job]++
		}
	}
	for i, e := range entries {
		p := periods[i%len(periods)]
		want := seconds / p
		if !e.Enabled {
			want = 0
		}
		if count[e.Name] != want {
			t.Fatalf("%s (every %ds, enabled %v) fired %d times in %ds, want %d", e.Name, p, e.Enabled, count[e.Name], seconds, want)
		}
	}
}

func TestSchedulerJobLocation(t *testing.T) {
	bucharest := mustLoc(t, "Europe/Bucharest")
	h := start(t, schedule.Config{})
	// 10:00:30 UTC is 13:00:30 in Bucharest (EEST).
	h.s.Set([]schedule.Entry{
		{Name: "ro", Schedule: mustParse(t, "30 0 13 * * *"), Location: bucharest, Enabled: true},
		{Name: "utc", Schedule: mustParse(t, "30 0 13 * * *"), Enabled: true},
	})
	collect(t, h.clock, h.out)
	if next := h.s.NextRun("ro"); !next.Equal(slot(30)) {
		t.Fatalf("NextRun(ro) = %s, want %s", next, slot(30))
	}
	h.clock.set(slot(30))
	got, _ := collect(t, h.clock, h.out)
	sameFirings(t, got, firings("ro", 30))
	if got[0].Slot.Location() != bucharest {
		t.Errorf("slot in %s, want the job's location", got[0].Slot.Location())
	}
	if next := h.s.NextRun("utc"); !next.Equal(time.Date(2024, 5, 1, 13, 0, 30, 0, time.UTC)) {
		t.Errorf("NextRun(utc) = %s", next)
	}
}
