package schedule

import "testing"

// TestSetAppliedLeavesNoWake: a Set made before Run and applied by the
// loop's first pass leaves no wake behind. A stale one woke the loop once
// more, after it had parked, so that it read the clock at a moment nobody
// chose: TestSchedulerWallClockSteps then saw a slot fired that a clock
// step had made too late (once in many runs of make test).
func TestSetAppliedLeavesNoWake(t *testing.T) {
	s := NewScheduler(Config{Firings: make(chan Firing)})
	s.Set([]Entry{{Name: "a", Schedule: mustParseForTest(t, "*/2 * * * * *"), Enabled: true}})
	if len(s.wake) != 1 {
		t.Fatalf("a pending Set left %d wakes; want 1", len(s.wake))
	}
	s.applyPending()
	if len(s.wake) != 0 {
		t.Fatal("a wake is left for a Set already applied")
	}
}

func mustParseForTest(t *testing.T, expr string) Schedule {
	t.Helper()
	sch, err := Parse(expr)
	if err != nil {
		t.Fatal(err)
	}
	return sch
}
