package schedule

import (
	"os"
	"testing"
	"time"
)

// TestPreciseTimer: on Linux the real clock's timers are timerfds; one
// fires no earlier than asked, once; a stopped one never fires; and
// neither leaves a descriptor or a goroutine behind (Stop returns once
// the timer's goroutine has).
func TestPreciseTimer(t *testing.T) {
	openFDs := func() int {
		t.Helper()
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatalf("list open descriptors: %v", err)
		}
		return len(ents)
	}
	before := openFDs()

	for _, d := range []time.Duration{30 * time.Millisecond, 0, -time.Second} {
		start := time.Now()
		tm := RealClock().NewTimer(d)
		if _, ok := tm.(*fdTimer); !ok {
			t.Fatalf("NewTimer(%s) made a %T, want a timerfd", d, tm)
		}
		select {
		case <-tm.C():
		case <-time.After(10 * time.Second):
			t.Fatalf("NewTimer(%s) had not fired after 10s", d)
		}
		if got := time.Since(start); got < d {
			t.Errorf("NewTimer(%s) fired after %s: early", d, got)
		}
		if tm.Stop() {
			t.Errorf("NewTimer(%s).Stop() after it fired = true, want false", d)
		}
		if len(tm.C()) != 0 {
			t.Errorf("NewTimer(%s) fired twice", d)
		}
	}

	for range 100 {
		tm := RealClock().NewTimer(time.Hour)
		if !tm.Stop() {
			t.Fatal("Stop() of a timer an hour off = false, want true")
		}
		if len(tm.C()) != 0 {
			t.Fatal("a timer stopped an hour before it was due fired")
		}
	}
	if after := openFDs(); after != before {
		t.Errorf("%d descriptors open after the timers, %d before", after, before)
	}
}
